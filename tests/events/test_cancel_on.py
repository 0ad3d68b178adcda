"""cancel_on: an event cancels the unfinished runs its match relates it to, found by index."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from _postgres import fresh_database
from _support import idle
from wayline import (
    Concurrency,
    Event,
    RunContext,
    RunStatus,
    StateMachine,
    activity,
    on_event,
    open_runtime,
    workflow,
)
from wayline.errors import FlowSpecError, InvalidArgumentError
from wayline.persistence import CANCEL_KEYS_ENTRY, CancelCandidate, StepStarted, cancel_key, encode_cancel_keys
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio

WORKER = Path(__file__).with_name("cancel_on_worker.py")
ROOT = Path(__file__).resolve().parents[2]

STEPS: list[str] = []


@pytest.fixture(autouse=True)
def _fresh_steps() -> None:
    STEPS.clear()


@activity(name="note_start")
async def note_start(run_id: str) -> None:
    STEPS.append(run_id)


@workflow(name="order", cancel_on=[on_event("order/cancelled", match="order_id")])
async def order(ctx: RunContext, o: dict[str, Any]) -> str:
    await ctx.run(note_start, ctx.run_id)
    await ctx.sleep(3600)
    return "shipped"


def reason(name: str, event_id: str) -> str:
    return f"cancelled by event {name!r} (id {event_id})"


async def status(rt: Any, run_id: str) -> RunStatus:
    return (await rt.describe(run_id)).status  # type: ignore[no-any-return]


async def test_a_matching_event_cancels_a_waiting_run_and_another_does_not(db: str) -> None:
    async with open_runtime(db, workflows=[order], clock=VirtualClock()) as rt:
        first = await rt.start(order, {"order_id": "o-1"}, run_id="o-1")
        await rt.start(order, {"order_id": "o-2"}, run_id="o-2")
        await idle(rt)
        other = await rt.send_event("order/cancelled", {"order_id": "o-9"})
        assert other.cancelled_run_ids == () and other.run_ids == ()
        assert await status(rt, "o-1") is RunStatus.WAITING
        sent = await rt.send_event("order/cancelled", {"order_id": "o-1", "why": "customer"}, id="evt-1")
        assert sent.cancelled_run_ids == ("o-1",)
        info = await rt.describe("o-1")
        assert info.status is RunStatus.CANCELLED
        assert info.cause == reason("order/cancelled", "evt-1")
        assert await status(rt, "o-2") is RunStatus.WAITING
        with pytest.raises(Exception, match="cancelled by event 'order/cancelled'"):
            await first.result()
        # The ended run's keys are gone (with its end); the other's stay.
        table = rt.store.cancel_keys  # type: ignore[attr-defined]
        key1, key2 = (cancel_key("order/cancelled", {"order_id": o}) for o in ("o-1", "o-2"))
        found = await table.cancel_targets(
            "order/cancelled", [CancelCandidate("order", key1.paths, key1.vals), CancelCandidate("order", *key2[1:])]
        )
        assert found == ["o-2"]
        # Sent again, the event finds nothing to cancel.
        again = await rt.send_event("order/cancelled", {"order_id": "o-1"})
        assert again.cancelled_run_ids == ()


async def test_a_passivated_run_is_cancelled_without_being_loaded_first(db: str) -> None:
    async with open_runtime(db, workflows=[order], clock=VirtualClock(), passivate_after=1) as rt:
        handle = await rt.start(order, {"order_id": "p-1"}, run_id="p-1")
        await rt.clock.sleep(10)
        assert rt.statistics().passivated == 1 and rt.statistics().live_runs == 0
        sent = await rt.send_event("order/cancelled", {"order_id": "p-1"}, id="evt-p")
        assert sent.cancelled_run_ids == ("p-1",)
        with anyio.fail_after(10):
            with pytest.raises(Exception, match="cancelled by event"):
                await handle.result()
        assert (await rt.describe("p-1")).cause == reason("order/cancelled", "evt-p")


@workflow(name="serial", concurrency=Concurrency(1), cancel_on=[on_event("job/cancelled", match={"job": "id"})])
async def serial(ctx: RunContext, job: dict[str, Any]) -> str:
    await ctx.run(note_start, ctx.run_id)
    await ctx.sleep(100)
    return str(job["id"])


async def test_a_queued_run_ends_cancelled_never_started(db: str) -> None:
    async with open_runtime(db, workflows=[serial], clock=VirtualClock()) as rt:
        running = await rt.start(serial, {"id": "a"}, run_id="a")
        queued = await rt.start(serial, {"id": "b"}, run_id="b")
        third = await rt.start(serial, {"id": "c"}, run_id="c")
        await idle(rt)
        assert await status(rt, "b") is RunStatus.QUEUED
        sent = await rt.send_event("job/cancelled", {"job": "b"}, id="evt-b")
        assert sent.cancelled_run_ids == ("b",)
        info = await rt.describe("b")
        assert info.status is RunStatus.CANCELLED and info.cause == reason("job/cancelled", "evt-b")
        assert [e async for e in rt.history("b") if isinstance(e, StepStarted)] == []
        with pytest.raises(Exception, match="cancelled by event"):
            await queued.result()
        assert await running.result() == "a"
        assert await third.result() == "c"  # it took the slot, not the cancelled run
        assert STEPS == ["a", "c"]


@workflow(name="refund", cancel_on=[on_event("order/cancelled", match={"order_id": lambda r: r["order"]["id"]})])
async def refund(ctx: RunContext, r: dict[str, Any]) -> str:
    await ctx.sleep(3600)
    return "refunded"


@workflow(name="cancel_audit", triggers=[on_event("order/cancelled")])
async def cancel_audit(ctx: RunContext, event: Event) -> str:
    return str(event.data["order_id"])


@workflow(name="watcher")
async def watcher(ctx: RunContext, order_id: str) -> str:
    event = await ctx.wait_for_event("order/cancelled", match={"order_id": order_id}, timeout=7200)
    return str(event.id)


async def test_one_event_cancels_the_runs_of_two_workflows_and_still_triggers_and_wakes(db: str) -> None:
    flows = [order, refund, cancel_audit, watcher]
    async with open_runtime(db, workflows=flows, clock=VirtualClock()) as rt:
        await rt.start(order, {"order_id": "o-7"}, run_id="o-7")
        await rt.start(refund, {"order": {"id": "o-7"}}, run_id="r-7")
        await rt.start(refund, {"order": {"id": "o-8"}}, run_id="r-8")
        watching = await rt.start(watcher, "o-7", run_id="w-7")
        await idle(rt)
        sent = await rt.send_event("order/cancelled", {"order_id": "o-7"}, id="evt-7")
        assert sent.cancelled_run_ids == ("o-7", "r-7")
        assert sent.run_ids == (f"cancel_audit@event:{sent.seq}",)
        assert await rt.get_handle(sent.run_ids[0]).result() == "o-7"
        assert await watching.result() == "evt-7"
        assert await status(rt, "r-8") is RunStatus.WAITING


@workflow(
    name="latest",
    triggers=[on_event("doc/edited")],
    cancel_on=[on_event("doc/edited", match="doc", where=lambda e: not e.data.get("minor"))],
)
async def latest(ctx: RunContext, event: Event) -> int:
    await ctx.sleep(60)
    return event.seq


async def test_an_event_cancels_older_runs_but_not_the_one_it_starts_and_where_filters(db: str) -> None:
    async with open_runtime(db, workflows=[latest], clock=VirtualClock()) as rt:
        first = await rt.send_event("doc/edited", {"doc": "d1"})
        await idle(rt)
        second = await rt.send_event("doc/edited", {"doc": "d1"})
        assert second.cancelled_run_ids == first.run_ids
        minor = await rt.send_event("doc/edited", {"doc": "d1", "minor": True})
        assert minor.cancelled_run_ids == ()  # where= lets only major edits cancel
        assert await status(rt, first.run_ids[0]) is RunStatus.CANCELLED
        assert await rt.get_handle(second.run_ids[0]).result() == second.seq
        assert await rt.get_handle(minor.run_ids[0]).result() == minor.seq


async def test_runs_without_the_path_and_events_before_the_run_are_not_cancelled(db: str) -> None:
    async with open_runtime(db, workflows=[order, refund], clock=VirtualClock()) as rt:
        early = await rt.send_event("order/cancelled", {"order_id": "late"})
        assert early.cancelled_run_ids == ()
        await rt.start(order, {"order_id": "late"}, run_id="late")  # created after the event
        await rt.start(order, {"no_id": True}, run_id="anon")  # no order_id: not cancellable by it
        await idle(rt)
        assert await status(rt, "late") is RunStatus.WAITING
        sent = await rt.send_event("order/cancelled", {"no_id": True})
        assert sent.cancelled_run_ids == ()
        assert await status(rt, "anon") is RunStatus.WAITING


async def test_an_event_dispatched_late_does_not_cancel_a_run_created_after_it_was_accepted(tmp_path: Path) -> None:
    db = str(tmp_path / "late.db")
    start = VirtualClock().time()
    async with open_runtime(db, workflows=[order], clock=VirtualClock(start + 100)) as rt:
        await rt.start(order, {"order_id": "n-1"}, run_id="n-1")
        await idle(rt)
    # Accepted (by a client, so not dispatched) at a time before the run was created.
    async with open_runtime(db, workflows=[order], clock=VirtualClock(start), worker=False) as client:
        await client.send_event("order/cancelled", {"order_id": "n-1"}, id="evt-early")
    async with open_runtime(db, workflows=[order], clock=VirtualClock(start + 200)) as rt:
        with anyio.fail_after(10):  # dispatched at open
            while await rt.store.events.undispatched():  # type: ignore[attr-defined]  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        assert await rt.get_handle("n-1").result() == "shipped"  # not cancelled


async def test_a_match_function_that_raises_refuses_the_start_with_its_reason() -> None:
    @workflow(name="fussy", cancel_on=[on_event("x", match={"k": lambda i: i["missing"]})])
    async def fussy(ctx: RunContext, i: dict[str, Any]) -> None:
        return None

    async with open_runtime(":memory:", workflows=[fussy, order], clock=VirtualClock()) as rt:
        with pytest.raises(FlowSpecError, match=r"workflow 'fussy' \(run 'f'\): the match= function for 'k'"):
            await rt.start(fussy, {}, run_id="f")
        assert await rt.store.get_run("f") is None
        with pytest.raises(FlowSpecError, match="at most 1024 with the paths"):
            await rt.start(order, {"order_id": "x" * 2000}, run_id="big")
        assert await rt.store.get_run("big") is None
    bad = StateMachine(MACHINE, name="m", cancel_on=["x"])  # checked when a runtime registers it
    with pytest.raises(InvalidArgumentError, match=r"StateMachine 'm'.*cancel_on.*on_event\(name, match=...\)"):
        async with open_runtime(":memory:", workflows=[bad]):
            pass


def test_bad_cancel_on_declarations_are_refused_precisely() -> None:
    async def body(ctx: RunContext) -> None:
        return None

    with pytest.raises(InvalidArgumentError, match="match= relates a cancelling event to a run"):
        workflow(name="w", triggers=[on_event("x", match="id")])(body)
    with pytest.raises(InvalidArgumentError, match="cancel_on"):
        workflow(name="w", cancel_on=on_event("x", match="id"))(body)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="dotted path"):
        on_event("x", match=5)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="dotted paths in the event's data"):
        on_event("x", match={"a..b": "a"})
    with pytest.raises(InvalidArgumentError, match="plain \\(not async\\) function"):
        on_event("x", match={"a": 3})  # type: ignore[dict-item]


MACHINE = {"StartAt": "Hold", "States": {"Hold": {"Type": "Wait", "Seconds": 3600, "End": True}}}


async def test_a_state_machine_run_is_cancelled_the_same_way(db: str) -> None:
    sm = StateMachine(MACHINE, name="holder", cancel_on=[on_event("hold/released", match="ticket")])
    async with open_runtime(db, workflows=[sm], clock=VirtualClock()) as rt:
        handle = await rt.start(sm, {"ticket": "t-1"}, run_id="t-1")
        await rt.start(sm, {"ticket": "t-2"}, run_id="t-2")
        await idle(rt)
        sent = await rt.send_event("hold/released", {"ticket": "t-1"}, id="evt-t")
        assert sent.cancelled_run_ids == ("t-1",)
        with pytest.raises(Exception, match="cancelled by event"):
            await handle.result()
        assert not (await status(rt, "t-2")).finished


FAILURES: list[str] = []


async def check_once(payload: Any) -> Any:
    if not FAILURES:
        FAILURES.append("failed")
        raise ValueError("the first attempt fails")
    return payload


FLAKY = {
    "StartAt": "Check",
    "States": {
        "Check": {"Type": "Task", "Resource": "check", "Next": "Hold"},
        "Hold": {"Type": "Wait", "Seconds": 3600, "End": True},
    },
}


async def test_keys_go_with_the_run_s_end_and_come_back_with_a_redrive(db: str) -> None:
    key = cancel_key("order/cancelled", {"order_id": "back"})
    candidates = [CancelCandidate("flaky", key.paths, key.vals)]
    FAILURES.clear()
    cancel_on = [on_event("order/cancelled", match="order_id")]
    flaky = StateMachine(FLAKY, name="flaky", resources={"check": check_once}, cancel_on=cancel_on)
    async with open_runtime(db, workflows=[flaky], clock=VirtualClock()) as rt:
        table = rt.store.cancel_keys  # type: ignore[attr-defined]
        handle = await rt.start(flaky, {"order_id": "back"}, run_id="back")
        info = await rt.describe("back")
        assert info.metadata[CANCEL_KEYS_ENTRY] == encode_cancel_keys([key])
        with pytest.raises(Exception, match="first attempt fails"):
            await handle.result()
        assert await table.cancel_targets("order/cancelled", candidates) == []  # gone with its end
        await rt.redrive("back")
        assert await table.cancel_targets("order/cancelled", candidates) == ["back"]
        await idle(rt)
        sent = await rt.send_event("order/cancelled", {"order_id": "back"})
        assert sent.cancelled_run_ids == ("back",)
        with pytest.raises(Exception, match="cancelled by event"):
            await rt.get_handle("back").result()


async def test_a_cancel_left_undispatched_happens_when_the_worker_opens(tmp_path: Path) -> None:
    db = str(tmp_path / "w.db")
    async with open_runtime(db, workflows=[order], clock=VirtualClock()) as rt:
        await rt.start(order, {"order_id": "k-1"}, run_id="k-1")
        await idle(rt)
    # A client commits the event and dispatches nothing (as a process that died right after
    # committing it would leave it); the worker that opens next dispatches it.
    async with open_runtime(db, workflows=[order], clock=VirtualClock(), worker=False) as client:
        sent = await client.send_event("order/cancelled", {"order_id": "k-1"}, id="evt-k")
        assert sent.cancelled_run_ids == ()
        assert await status(client, "k-1") is RunStatus.WAITING
    async with open_runtime(db, workflows=[order], clock=VirtualClock()) as rt:
        with anyio.fail_after(10):
            while await status(rt, "k-1") is not RunStatus.CANCELLED:  # noqa: ASYNC110 - a row
                await asyncio.sleep(0.01)
        assert (await rt.describe("k-1")).cause == reason("order/cancelled", "evt-k")


async def test_an_event_sent_to_one_worker_cancels_a_run_another_worker_holds() -> None:
    with fresh_database() as url:
        async with (
            open_runtime(url, workflows=[order], worker_id="a") as a,
            open_runtime(url, workflows=[order], worker_id="b") as b,
        ):
            handle = await a.start(order, {"order_id": "x-1"}, run_id="x-1")
            with anyio.fail_after(10):
                while await status(a, "x-1") is not RunStatus.WAITING:  # noqa: ASYNC110 - a row
                    await asyncio.sleep(0.02)
            assert "x-1" in a._runs._refs and "x-1" not in b._runs._refs
            sent = await b.send_event("order/cancelled", {"order_id": "x-1"}, id="evt-x")
            assert sent.cancelled_run_ids == ("x-1",)  # committed to its inbox; `a` applies it
            with anyio.fail_after(10), pytest.raises(Exception, match="cancelled by event"):
                await handle.result()
            assert (await b.describe("x-1")).cause == reason("order/cancelled", "evt-x")
            assert "x-1" not in b._runs._refs


@workflow(name="held", cancel_on=[on_event("order/cancelled", match="order_id")])
async def held(ctx: RunContext, order: dict[str, Any]) -> str:
    await ctx.sleep(3600)
    return "done"


@pytest.mark.timeout(120)
async def test_a_cancel_happens_after_kill_9_between_the_commit_and_the_dispatch(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    with anyio.fail_after(60):
        proc = await anyio.run_process([sys.executable, str(WORKER), str(db)], check=False, env=env)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    assert proc.stdout.decode().strip() == "sending"
    async with open_runtime(db, workflows=[held], clock=VirtualClock()) as rt:
        stored = await rt.list_events(name="order/cancelled")
        assert [e.id for e in stored] == ["evt-kill"]  # committed before the process died
        with anyio.fail_after(10):
            while await status(rt, "held") is not RunStatus.CANCELLED:  # noqa: ASYNC110 - a row
                await asyncio.sleep(0.01)
        assert (await rt.describe("held")).cause == reason("order/cancelled", "evt-kill")


def test_the_cancel_on_example_runs() -> None:
    example = ROOT / "examples" / "cancel_on.py"
    done = subprocess.run([sys.executable, str(example)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "a test cancel cancels 0 runs",
        "cancelled: ('fulfil@event:2', 'invoice-o-2')",
        "CANCELLED - cancelled by event 'order/cancelled' (id cancel-7)",
        "invoice: run 'invoice-o-2' was cancelled: cancelled by event 'order/cancelled' (id cancel-7)",
        "o-1: shipped",
    ]
