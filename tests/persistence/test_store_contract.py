"""The `Store` contract, checked on the in-memory, the SQLite and the PostgreSQL store."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from wayline import PayloadError, StoreError
from wayline.persistence import (
    ErrorInfo,
    MemoryStore,
    RunRecord,
    RunStarted,
    RunStatus,
    RunSucceeded,
    SignalMessage,
    SQLiteStore,
    StepStarted,
    StepSucceeded,
    Store,
    TimerWait,
)

pytestmark = pytest.mark.anyio


def rec(
    run_id: str,
    *,
    workflow: str = "wf",
    status: RunStatus = RunStatus.RUNNING,
    created: float = 1.0,
    seq: int = 0,
    **kw: Any,
) -> RunRecord:
    return RunRecord(run_id=run_id, workflow=workflow, status=status, created_at=created, history_seq=seq, **kw)


def step(i: int, result: Any = None) -> list[Any]:
    return [
        StepStarted(ts=float(i), step=f"s{i}", index=i, attempt=1),
        StepSucceeded(ts=float(i), step=f"s{i}", index=i, attempt=1, result=result),
    ]


def test_every_store_satisfies_the_protocol(tmp_path: Any) -> None:
    from wayline.persistence import PostgresStore

    assert isinstance(MemoryStore(), Store)
    assert isinstance(SQLiteStore(tmp_path / "x.db"), Store)
    assert isinstance(PostgresStore("postgresql://nobody@127.0.0.1/none"), Store)


async def test_create_then_get(store: Store) -> None:
    r = rec("r1", input={"a": [1, 2]}, vars={"k": "v"})
    assert await store.create_run(r, [RunStarted(ts=1.0, workflow="wf", version="1")]) is None
    got = await store.get_run("r1")
    assert got == r
    assert await store.get_run("missing") is None
    assert await store.get_history("missing") == []


async def test_create_is_idempotent_and_keeps_the_first_record(store: Store) -> None:
    first = rec("r1", input="first")
    assert await store.create_run(first, [RunStarted(ts=1.0, workflow="wf", version="1")]) is None
    second = rec("r1", workflow="other", input="second")
    existing = await store.create_run(second, [RunStarted(ts=2.0, workflow="other", version="1")])
    assert existing == first
    assert await store.get_run("r1") == first
    assert [e.ts for e in await store.get_history("r1")] == [1.0]


@pytest.mark.parametrize("with_events", [True, False], ids=["events", "no-events"])
async def test_concurrent_creates_of_one_run_id_yield_exactly_one_winner(store: Store, with_events: bool) -> None:
    a = rec("same", workflow="a", input="a", seq=int(with_events))
    b = rec("same", workflow="b", input="b", seq=int(with_events))
    ev = lambda wf: [RunStarted(ts=1.0, workflow=wf, version="1")] if with_events else []  # noqa: E731
    results = await asyncio.gather(store.create_run(a, ev("a")), store.create_run(b, ev("b")))
    # one caller created the run; the other must be told it already exists
    assert results.count(None) == 1, results
    stored = await store.get_run("same")
    assert stored == (a if results[0] is None else b)
    assert results[1 if results[0] is None else 0] == stored
    assert len(await store.get_history("same")) == int(with_events)


async def test_a_duplicate_create_does_not_fail_other_writes_in_its_batch(store: Store) -> None:
    await store.create_run(rec("bystander", seq=1), [RunStarted(ts=0.0, workflow="wf", version="1")])
    dup = [RunStarted(ts=1.0, workflow="wf", version="1")]
    results = await asyncio.gather(
        store.create_run(rec("same", seq=1), dup),
        store.create_run(rec("same", seq=1), dup),
        store.checkpoint(rec("bystander", seq=2, vars={"v": 1}), step(1)),
        return_exceptions=True,
    )
    assert not any(isinstance(r, BaseException) for r in results), results
    got = await store.get_run("bystander")
    assert got is not None and got.vars == {"v": 1}


async def test_checkpoint_replaces_snapshot_and_appends_history_in_order(store: Store) -> None:
    await store.create_run(rec("r"), [RunStarted(ts=0.0, workflow="wf", version="1")])
    for i in range(1, 6):  # the create wrote history row 0; checkpoint i writes row i
        await store.checkpoint(rec("r", seq=i + 1, vars={"i": i}, steps=i), step(i, result=i * 10))
    got = await store.get_run("r")
    assert got is not None and got.vars == {"i": 5} and got.steps == 5
    history = await store.get_history("r")
    assert [type(e).__name__ for e in history] == ["RunStarted"] + ["StepStarted", "StepSucceeded"] * 5
    assert [e.result for e in history if isinstance(e, StepSucceeded)] == [10, 20, 30, 40, 50]


async def test_history_is_ordered_by_row_number_not_insertion(store: Store) -> None:
    await store.create_run(rec("r"), [RunStarted(ts=0.0, workflow="wf", version="1")])
    await store.checkpoint(rec("r", seq=11), step(10))  # row 10
    await store.checkpoint(rec("r", seq=3), step(2))  # row 2
    indexes = [e.index for e in await store.get_history("r") if isinstance(e, StepSucceeded)]
    if not isinstance(store, MemoryStore):
        assert indexes == [2, 10]
    else:  # the memory store appends in call order; the databases key rows by number
        assert sorted(indexes) == [2, 10]


async def test_checkpoint_without_events_writes_no_history(store: Store) -> None:
    await store.create_run(rec("r"), [RunStarted(ts=0.0, workflow="wf", version="1")])
    await store.checkpoint(rec("r", seq=2, status=RunStatus.WAITING, waits=(TimerWait(due=5.0),)), [])
    got = await store.get_run("r")
    assert got is not None and got.status is RunStatus.WAITING and got.wake_at == 5.0
    assert len(await store.get_history("r")) == 1


async def test_history_ends_with_the_snapshot_tail(store: Store) -> None:
    await store.create_run(rec("r"), [RunStarted(ts=0.0, workflow="wf", version="1")])
    tail = tuple(step(1))
    await store.checkpoint(rec("r", seq=1, tail=tail), [])  # no events: no history row
    assert [type(e).__name__ for e in await store.get_history("r")] == ["RunStarted", "StepStarted", "StepSucceeded"]


async def test_list_runs_filters_and_orders(store: Store) -> None:
    await store.create_run(rec("c", workflow="x", created=3.0), [])
    await store.create_run(rec("a", workflow="x", created=1.0, status=RunStatus.PENDING), [])
    await store.create_run(rec("b", workflow="y", created=2.0), [])
    await store.create_run(rec("a2", workflow="y", created=1.0), [])
    await store.checkpoint(
        rec("c", workflow="x", created=3.0, status=RunStatus.SUCCEEDED, output=1, seq=1),
        [RunSucceeded(ts=4.0, output=1)],
    )
    ids = lambda rs: [r.run_id for r in rs]  # noqa: E731
    assert ids(await store.list_runs()) == ["a", "a2", "b", "c"]  # created_at, then run_id
    assert ids(await store.list_runs(workflow="x")) == ["a", "c"]
    assert ids(await store.list_runs(statuses=[RunStatus.RUNNING])) == ["a2", "b"]
    assert ids(await store.list_runs(statuses=[RunStatus.SUCCEEDED, RunStatus.PENDING])) == ["a", "c"]
    assert ids(await store.list_runs(statuses=[RunStatus.RUNNING], workflow="y", limit=1)) == ["a2"]
    assert ids(await store.list_runs(statuses=[RunStatus.FAILED])) == []
    assert ids(await store.list_runs(limit=2)) == ["a", "a2"]
    # several statuses with a limit (one index scan per status, merged), in both orders
    two = [RunStatus.RUNNING, RunStatus.SUCCEEDED, RunStatus.RUNNING]
    assert ids(await store.list_runs(statuses=two, limit=2)) == ["a2", "b"]
    assert ids(await store.list_runs(statuses=two, newest_first=True, limit=2)) == ["c", "b"]
    assert ids(await store.list_runs(statuses=two, since=2.0, newest_first=True, limit=5)) == ["c", "b"]
    assert ids(await store.list_runs(statuses=two, workflow="y", newest_first=True, limit=5)) == ["b", "a2"]
    assert ids(await store.list_runs(statuses=[], limit=5)) == []
    assert await store.count_runs([RunStatus.RUNNING]) == 2
    assert await store.count_runs([RunStatus.SUCCEEDED, RunStatus.PENDING]) == 2
    assert await store.count_runs([RunStatus.FAILED]) == 0


async def test_unencodable_create_raises_payload_error_and_writes_nothing(store: Store) -> None:
    with pytest.raises(PayloadError) as info:
        await store.create_run(rec("r", input=object()), [])
    assert info.value.run_id == "r"
    assert await store.get_run("r") is None
    assert await store.list_runs() == []
    assert store.pending == 0


async def test_unencodable_checkpoint_raises_payload_error_and_keeps_the_old_state(store: Store) -> None:
    good = rec("r", vars={"ok": 1})
    await store.create_run(good, [RunStarted(ts=0.0, workflow="wf", version="1")])
    with pytest.raises(PayloadError):
        await store.checkpoint(rec("r", seq=2, vars={"bad": object()}), step(1))
    with pytest.raises(PayloadError):
        await store.checkpoint(rec("r", seq=2), step(1, result=object()))
    assert await store.get_run("r") == good
    assert len(await store.get_history("r")) == 1
    # and the store still works afterwards
    await store.checkpoint(rec("r", seq=2, vars={"ok": 2}), step(1))
    got = await store.get_run("r")
    assert got is not None and got.vars == {"ok": 2}


async def test_caller_may_mutate_values_after_the_call(store: Store) -> None:
    vars_: dict[str, Any] = {"n": 1}
    pending = asyncio.ensure_future(store.create_run(rec("r", vars=vars_), []))
    await asyncio.sleep(0)
    vars_["n"] = 999  # contract: values are encoded before the call suspends
    await pending
    got = await store.get_run("r")
    assert got is not None and got.vars == {"n": 1}


async def test_error_info_round_trips(store: Store) -> None:
    failed = rec("r", status=RunStatus.FAILED, error=ErrorInfo("ValueError", "bad"), ended_at=9.0)
    await store.create_run(failed, [])
    got = await store.get_run("r")
    assert got is not None and got.error == ErrorInfo("ValueError", "bad") and got.status.finished


async def test_closed_store_raises_store_error(store: Store) -> None:
    await store.create_run(rec("r"), [])
    await store.close()
    with pytest.raises(StoreError):
        await store.checkpoint(rec("r", seq=2), step(1))
    with pytest.raises(StoreError):
        await store.get_run("r")


async def test_records_read_back_are_copies(store: Store) -> None:
    await store.create_run(rec("r", vars={"k": [1]}), [])
    got = await store.get_run("r")
    assert got is not None
    got.vars["k"].append(2)
    got.vars["new"] = True
    again = await store.get_run("r")
    assert again is not None and again.vars == {"k": [1]}


async def test_list_runs_with_no_statuses_matches_nothing(store: Store) -> None:
    await store.create_run(rec("r"), [])
    assert await store.list_runs(statuses=[]) == []
    assert await store.count_runs([]) == 0
    assert await store.list_runs(limit=0) == []


def msg(name: str) -> SignalMessage:
    return SignalMessage(name=name, payload={"n": name}, ts=1.0)


async def test_inbox_keeps_messages_in_order_until_consumed(store: Store) -> None:
    await store.create_run(rec("r"), [])
    a = await store.append_inbox("r", msg("a"))
    b = await store.append_inbox("r", msg("b"))
    assert a is not None and b is not None and a < b
    assert [(s, m.name) for s, m in await store.get_inbox("r")] == [(a, "a"), (b, "b")]
    await store.checkpoint(rec("r", seq=1), step(1), consumed=[a])
    assert [m.name for _, m in await store.get_inbox("r")] == ["b"]
    assert [(s, r, m.name) for s, r, m in await store.inbox_since(0)] == [(b, "r", "b")]


async def test_inbox_refuses_messages_for_missing_or_finished_runs(store: Store) -> None:
    assert await store.append_inbox("nobody", msg("a")) is None
    await store.create_run(rec("done", status=RunStatus.SUCCEEDED, ended_at=2.0), [])
    assert await store.append_inbox("done", msg("a")) is None
    assert await store.inbox_since(0) == []


async def test_finishing_checkpoint_deletes_the_runs_leftover_messages(store: Store) -> None:
    # A run may end without waiting for a message it was sent: nothing can consume the message
    # after that, so the final checkpoint takes it away (and only that run's messages).
    await store.create_run(rec("r"), [])
    await store.create_run(rec("other"), [])
    await store.append_inbox("r", msg("never read"))
    kept = await store.append_inbox("other", msg("still wanted"))
    await store.checkpoint(rec("r", status=RunStatus.SUCCEEDED, seq=1, ended_at=3.0), step(1))
    assert await store.get_inbox("r") == []
    assert [(s, r) for s, r, _ in await store.inbox_since(0)] == [(kept, "other")]
    assert await store.append_inbox("r", msg("too late")) is None


async def test_worker_and_lease_methods_answer_on_every_store(store: Store) -> None:
    # SQLite and memory have one owner, so their answers are trivial; PostgreSQL's are real.
    # The runtime uses the same calls on all of them.
    await store.create_run(rec("a", created=1.0), [])
    await store.create_run(rec("w", created=2.0, status=RunStatus.WAITING), [])
    await store.create_run(rec("done", created=3.0, status=RunStatus.SUCCEEDED, ended_at=3.0), [])
    assert await store.run_owners(["a", "w"]) == {"a": None, "w": None}  # no worker yet
    info = await store.register_worker("me", lease_seconds=30)
    assert info.worker_id == "me" and info.lease_until > info.heartbeat_at
    assert [lease.run_id for lease in await store.claim_runs(10)] == ["a"]  # PENDING and RUNNING
    assert await store.claim_runs(10) == []  # a run is handed out once
    assert await store.claim_run("done") is None and await store.claim_run("missing") is None
    held = await store.claim_run("w")
    assert held is not None and held.run_id == "w"
    assert await store.claim_run("w") == held  # already this worker's
    await store.checkpoint(rec("a", seq=1, vars={"ok": 1}), step(1))  # a held run commits
    got = await store.get_run("a")
    assert got is not None and got.vars == {"ok": 1}
    assert await store.renew_worker() == []
    await store.release_runs(["a"])
    assert [lease.run_id for lease in await store.claim_runs(10)] == ["a"]  # claimable again
    assert [(w.worker_id, w.runs) for w in await store.list_workers()] == [("me", 2)]
    owners = await store.run_owners(["a", "w", "done", "missing"])
    assert owners == {"a": "me", "w": "me", "done": None, "missing": None}  # only unfinished runs are owned
    subscription = await store.subscribe(lambda topic, key: None)
    await subscription.close()


async def test_claims_of_a_worker_take_only_the_workflows_it_has(store: Store) -> None:
    await store.create_run(rec("a", workflow="mine", created=1.0), [])
    await store.create_run(rec("b", workflow="theirs", created=2.0), [])
    await store.create_run(rec("c", workflow="other", created=3.0, status=RunStatus.WAITING), [])
    await store.register_worker("me", lease_seconds=30)
    running = (RunStatus.PENDING, RunStatus.RUNNING)
    assert await store.unclaimed_workflows(running, ["mine"]) == ["theirs"]
    assert await store.unclaimed_workflows([*running, RunStatus.WAITING], ["mine"]) == ["other", "theirs"]
    assert [lease.run_id for lease in await store.claim_runs(10, workflows=["mine", "absent"])] == ["a"]
    assert await store.claim_runs(10, workflows=["mine"]) == []
    assert await store.unclaimed_workflows(running, []) == ["theirs"]  # "mine" is held now
    assert [lease.run_id for lease in await store.claim_runs(10)] == ["b"]  # any workflow
    assert await store.unclaimed_workflows(running, []) == []
