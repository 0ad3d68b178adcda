"""Callback tokens: ctx.wait_for_callback, rt.complete_callback / fail_callback / heartbeat."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import anyio
import pytest

from _support import Changes, event_types, idle
from wayline import (
    ActivityError,
    CallbackError,
    CallbackTokenError,
    Cancelled,
    RetryPolicy,
    RunAlreadyFinishedError,
    RunCancelled,
    RunContext,
    RunStatus,
    activity,
    open_runtime,
    workflow,
)
from wayline.persistence import CallbackCompleted, SQLiteStore
from wayline.testing import FaultInjectingStore, SimulatedCrash, VirtualClock

pytestmark = pytest.mark.anyio

# What the sender activities "sent": (token, order) pairs, as an outside system would get them.
outbox: list[tuple[str, Any]] = []
sent = Changes()  # told of each send
sends = {"count": 0}


@activity(name="send_approval")
async def send_approval(token: str, order: Any) -> str:
    sends["count"] += 1
    outbox.append((token, order))
    sent.changed()
    return "sent"


@activity(name="send_broken", retry=RetryPolicy(max_attempts=2, interval=1.0))
async def send_broken(token: str) -> None:
    sends["count"] += 1
    outbox.append((token, None))
    sent.changed()
    raise ConnectionError("mail server down")


@workflow(name="approval")
async def approval(ctx: RunContext, order: Any) -> Any:
    try:
        decision = await ctx.wait_for_callback(send_approval, order)
    except CallbackError as exc:
        return {"error": exc.error, "cause": exc.cause}
    ctx.vars["decision"] = decision
    return decision


# With a deadline: under the virtual clock, time jumps to it as soon as everything waits, so
# tests of this one do not poll (polling sleeps would let the clock jump).
@workflow(name="deadline")
async def deadline(ctx: RunContext, order: Any) -> Any:
    try:
        return await ctx.wait_for_callback(send_approval, order, timeout=3600)
    except CallbackError as exc:
        return {"error": exc.error, "cause": exc.cause}


@workflow(name="watched")
async def watched(ctx: RunContext, heartbeat: float) -> Any:
    try:
        return await ctx.wait_for_callback(send_approval, "w", timeout=10_000, heartbeat_timeout=heartbeat)
    except CallbackError as exc:
        return {"error": exc.error}


@workflow(name="two_callbacks")
async def two_callbacks(ctx: RunContext) -> list[Any]:
    first = await ctx.wait_for_callback(send_approval, "first")
    second = await ctx.wait_for_callback(send_approval, "second")
    return [first, second]


@workflow(name="broken_sender")
async def broken_sender(ctx: RunContext) -> str:
    try:
        await ctx.wait_for_callback(send_broken)
    except ActivityError as exc:
        return f"could not send: {exc.cause}"
    return "unreachable"


@workflow(name="cancellable_approval")
async def cancellable_approval(ctx: RunContext) -> str:
    try:
        return str(await ctx.wait_for_callback(send_approval, "c"))
    except Cancelled:
        ctx.vars["compensated"] = True
        raise


WORKFLOWS = [approval, deadline, watched, two_callbacks, broken_sender, cancellable_approval]


@pytest.fixture(autouse=True)
def _reset() -> None:
    outbox.clear()
    sends["count"] = 0


async def next_token(count: int = 1) -> str:
    """The newest token sent, once ``count`` have been sent."""
    await sent.until(lambda: len(outbox) >= count)
    return outbox[-1][0]


async def waiting(rt: Any, *run_ids: str) -> None:
    """Once the runs (on a virtual clock) have parked on their callbacks."""
    await idle(rt)
    for run_id in run_ids:
        assert (await rt.describe(run_id)).status is RunStatus.WAITING


async def test_complete_callback_returns_the_output_and_journals_it(db: str) -> None:
    async with open_runtime(db, workflows=WORKFLOWS, clock=VirtualClock()) as rt:
        handle = await rt.start(approval, {"id": 7}, run_id="a")
        token = await next_token()
        assert outbox == [(token, {"id": 7})]
        await waiting(rt, "a")
        info = await rt.describe("a")
        assert info.waiting_for == ("callback:send_approval",)
        await rt.complete_callback(token, {"approved": True})
        assert await handle.result() == {"approved": True}
        history = [e async for e in rt.history("a")]
        types = event_types(history)
        assert types.index("CallbackWaiting") < types.index("StepSucceeded") < types.index("CallbackCompleted")
        assert await rt.store.get_inbox("a") == []
        with pytest.raises(CallbackTokenError, match="already been completed"):
            await rt.complete_callback(token, {"approved": False})


async def test_the_token_itself_is_never_stored(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    async with open_runtime(path, workflows=WORKFLOWS, clock=VirtualClock()) as rt:
        handle = await rt.start(approval, "o", run_id="s")
        token = await next_token()
        await rt.complete_callback(token, "ok")
        assert await handle.result() == "ok"
    secret = token.rsplit(".", 1)[1].encode()
    for file in tmp_path.iterdir():  # noqa: ASYNC240 - the runtime is closed: nothing to block
        assert secret not in file.read_bytes(), file.name


async def test_fail_callback_raises_callback_error_in_the_workflow(db: str) -> None:
    async with open_runtime(db, workflows=WORKFLOWS, clock=VirtualClock()) as rt:
        handle = await rt.start(approval, "o", run_id="f")
        await rt.fail_callback(await next_token(), "Rejected", "over budget")
        assert await handle.result() == {"error": "Rejected", "cause": "over budget"}
        with pytest.raises(ValueError, match="error name"):
            await rt.fail_callback(outbox[-1][0], "")


async def test_timeout_fails_with_states_timeout_exactly_on_the_virtual_clock(db: str) -> None:
    clock = VirtualClock()
    async with open_runtime(db, workflows=WORKFLOWS, clock=clock) as rt:
        t0 = clock.time()
        handle = await rt.start(deadline, "late", run_id="t")
        result = await handle.result()
        token = outbox[0][0]
        assert result["error"] == "States.Timeout"
        assert clock.time() - t0 == pytest.approx(3600)
        with pytest.raises(CallbackTokenError, match=r"ended|timed out"):
            await rt.complete_callback(token, "too late")


async def test_heartbeats_keep_the_wait_alive_until_they_stop(db: str) -> None:
    clock = VirtualClock()
    async with open_runtime(db, workflows=WORKFLOWS, clock=clock) as rt:
        t0 = clock.time()
        handle = await rt.start(watched, 60.0, run_id="h")
        # No polling here: the test moves on the virtual timeline itself (a real sleep would
        # let the clock jump straight to the heartbeat timeout).
        for _ in range(5):  # a heartbeat just before each heartbeat timeout
            await clock.sleep(59.9)
            await rt.heartbeat(outbox[-1][0])
        assert not (await rt.describe("h")).status.finished
        result = await handle.result()
        assert result == {"error": "States.HeartbeatTimeout"}
        assert clock.time() - t0 == pytest.approx(5 * 59.9 + 60, abs=0.01)
        types = event_types([e async for e in rt.history("h")])
        assert types.count("CallbackHeartbeat") == 5


async def test_a_heartbeat_after_completion_and_bad_tokens_are_rejected_precisely(db: str) -> None:
    async with open_runtime(db, workflows=WORKFLOWS, clock=VirtualClock()) as rt:
        handle = await rt.start(approval, "x", run_id="r")
        token = await next_token()
        with pytest.raises(CallbackTokenError, match="not a wayline callback token"):
            await rt.complete_callback("garbage", 1)
        forged = token[: -4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        with pytest.raises(CallbackTokenError, match="not waiting on this token"):
            await rt.complete_callback(forged, 1)
        other_run = token.replace(token.split(".")[1], "bm9wZQ")  # run "nope"
        with pytest.raises(CallbackTokenError, match="does not exist"):
            await rt.complete_callback(other_run, 1)
        await rt.complete_callback(token, "yes")
        with pytest.raises(CallbackTokenError):
            await rt.heartbeat(token)
        assert await handle.result() == "yes"


async def test_two_completions_at_once_only_one_wins(db: str) -> None:
    async with open_runtime(db, workflows=WORKFLOWS, clock=VirtualClock()) as rt:
        handle = await rt.start(approval, "x", run_id="race")
        token = await next_token()
        results = await asyncio.gather(
            rt.complete_callback(token, "first"), rt.complete_callback(token, "second"), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        assert len(errors) == 1 and isinstance(errors[0], CallbackTokenError)
        winner = "first" if results[0] is None else "second"
        assert await handle.result() == winner


async def test_a_completion_before_the_sender_returns_is_kept() -> None:
    """The wait is durable before the sender runs, so the other side may answer at once."""

    @activity(name="send_and_answer")
    async def send_and_answer(token: str) -> None:
        await Holder.rt.complete_callback(token, "instant")

    @workflow(name="instant")
    async def instant(ctx: RunContext) -> Any:
        return await ctx.wait_for_callback(send_and_answer)

    class Holder:
        rt: Any

    async with open_runtime(":memory:", workflows=[instant], clock=VirtualClock()) as rt:
        Holder.rt = rt
        assert await (await rt.start(instant, None)).result() == "instant"


async def test_a_sender_that_fails_for_good_raises_and_its_token_is_dead(db: str) -> None:
    async with open_runtime(db, workflows=WORKFLOWS, clock=VirtualClock()) as rt:
        handle = await rt.start(broken_sender, None, run_id="b")
        assert await handle.result() == "could not send: mail server down"
        assert sends["count"] == 2
        with pytest.raises(CallbackTokenError):
            await rt.complete_callback(outbox[0][0], "never")


async def test_cancel_while_waiting_runs_compensation_and_kills_the_token(db: str) -> None:
    async with open_runtime(db, workflows=WORKFLOWS, clock=VirtualClock()) as rt:
        handle = await rt.start(cancellable_approval, None, run_id="c")
        token = await next_token()
        await waiting(rt, "c")
        await rt.cancel("c", "no longer needed")
        with pytest.raises(RunCancelled):
            await handle.result()
        assert (await rt.describe("c")).vars == {"compensated": True}
        with pytest.raises(CallbackTokenError, match="ended"):
            await rt.complete_callback(token, "late")


async def test_completions_racing_a_cancel_are_applied_or_refused_never_lost(db: str) -> None:
    # Each waiting run is cancelled and its callback completed at the same moment, in both
    # orders. Whichever wins, the loser hears of it (a completion refused with
    # CallbackTokenError, a cancel with RunAlreadyFinishedError), and no message accepted for
    # a run outlives it in the inbox.
    async with open_runtime(db, workflows=WORKFLOWS, clock=VirtualClock()) as rt:
        handles = [await rt.start(approval, f"a{i}", run_id=f"a{i}") for i in range(12)]
        await next_token(len(handles))
        await waiting(rt, *(h.run_id for h in handles))
        token_of = {order: token for token, order in outbox}

        async def complete(run_id: str) -> str:
            try:
                await rt.complete_callback(token_of[run_id], f"ok {run_id}")
            except CallbackTokenError as exc:
                assert exc.run_id == run_id
                return "refused"
            return "accepted"

        async def cancel(run_id: str) -> str:
            try:
                await rt.cancel(run_id, "race")
            except RunAlreadyFinishedError:
                return "refused"
            return "accepted"

        outcomes = {}
        for i, h in enumerate(handles):
            pair = (complete(h.run_id), cancel(h.run_id))
            done = await asyncio.gather(*(pair if i % 2 else pair[::-1]))
            outcomes[h.run_id] = done if i % 2 else done[::-1]
        ended = set()
        for h in handles:
            completion, cancellation = outcomes[h.run_id]
            info = await rt.describe(h.run_id)
            ended.add(info.status)
            if info.status is RunStatus.SUCCEEDED:
                assert completion == "accepted" and cancellation == "refused"
                assert await h.result() == f"ok {h.run_id}"
            else:
                assert info.status is RunStatus.CANCELLED
                assert cancellation == "accepted"
                with pytest.raises(RunCancelled):
                    await h.result()
                # Refused, or accepted and then dropped with the run: the cancel came first.
                assert completion in ("refused", "accepted")
                assert await complete(h.run_id) == "refused"  # and from now on, refused
            assert await cancel(h.run_id) == "refused"
        assert ended == {RunStatus.SUCCEEDED, RunStatus.CANCELLED}  # each side won some races
        assert await rt.store.inbox_since(0) == []


async def test_sequential_callbacks_replay_after_restart(tmp_path: Path) -> None:
    path = tmp_path / "seq.db"
    async with open_runtime(path, workflows=WORKFLOWS, clock=VirtualClock()) as rt:
        await rt.start(two_callbacks, None, run_id="two")
        await rt.complete_callback(await next_token(1), "one")
        second = await next_token(2)
        await waiting(rt, "two")
    async with open_runtime(path, workflows=WORKFLOWS, clock=VirtualClock()) as rt:
        await rt.complete_callback(second, "two")
        assert await rt.get_handle("two").result() == ["one", "two"]
    assert sends["count"] == 2  # replay did not send again


async def test_a_callback_completed_while_the_process_is_down_is_applied_on_restart(tmp_path: Path) -> None:
    path = tmp_path / "down.db"
    async with open_runtime(path, workflows=WORKFLOWS, clock=VirtualClock()) as rt:
        await rt.start(approval, "o", run_id="d")
        token = await next_token()
        await waiting(rt, "d")
    # The worker is gone; an operator (the CLI: a runtime that does not own the runs) answers.
    async with open_runtime(path, workflows=[], worker=False, inbox_poll_interval=None) as cli:
        await cli.complete_callback(token, "answered offline")
        with pytest.raises(CallbackTokenError, match="already been completed"):
            await cli.complete_callback(token, "twice")
    async with open_runtime(path, workflows=WORKFLOWS, clock=VirtualClock()) as rt:
        assert await rt.get_handle("d").result() == "answered offline"
    assert sends["count"] == 1


async def test_a_completion_from_another_process_reaches_the_live_run(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    async with open_runtime(path, workflows=WORKFLOWS, inbox_poll_interval=0.01) as owner:
        handle = await owner.start(approval, "o", run_id="x")
        token = await next_token()  # the wait is durable before its sender runs
        async with open_runtime(path, workflows=[], worker=False, inbox_poll_interval=None) as other:
            await other.complete_callback(token, "from afar")
        with anyio.fail_after(5):
            assert await handle.result() == "from afar"


async def test_a_passivated_run_is_woken_by_its_callback(tmp_path: Path) -> None:
    clock = VirtualClock()
    async with open_runtime(tmp_path / "p.db", workflows=WORKFLOWS, clock=clock, passivate_after=5) as rt:
        handle = await rt.start(approval, "o", run_id="p")
        token = await next_token()
        await clock.sleep(10)
        assert rt.statistics().live_runs == 0  # left memory
        await rt.complete_callback(token, "welcome back")
        assert await handle.result() == "welcome back"
        assert sends["count"] == 1


async def test_a_passivated_run_times_out_at_its_deadline(tmp_path: Path) -> None:
    clock = VirtualClock()
    async with open_runtime(tmp_path / "p.db", workflows=WORKFLOWS, clock=clock, passivate_after=5) as rt:
        t0 = clock.time()
        handle = await rt.start(deadline, "o", run_id="pt")
        assert (await handle.result())["error"] == "States.Timeout"
        assert sends["count"] == 1
        assert clock.time() - t0 == pytest.approx(3600)


@pytest.mark.parametrize("when", ["before", "after"])
async def test_crash_at_every_write_of_a_callback_run(tmp_path: Path, when: str) -> None:
    """Whatever write the process dies at, the run ends with the answer it was given, and the
    sender ran at most once more; a token handed out before the crash still completes it."""
    counter = FaultInjectingStore(SQLiteStore(tmp_path / "clean.db"), crash_at=None)
    async with open_runtime(counter, workflows=WORKFLOWS, clock=VirtualClock()) as rt:
        handle = await rt.start(approval, "o", run_id="k")
        await rt.complete_callback(await next_token(), "yes")
        assert await handle.result() == "yes"
    writes = counter.writes
    for n in range(1, writes + 1):
        outbox.clear()
        sends["count"] = 0
        path = tmp_path / f"crash-{n}-{when}.db"
        faulty = FaultInjectingStore(SQLiteStore(path), crash_at=n, when=when)
        with pytest.raises((SimulatedCrash, BaseExceptionGroup)):
            async with open_runtime(faulty, workflows=WORKFLOWS, clock=VirtualClock()) as rt:
                handle = await rt.start(approval, "o", run_id="k")
                await idle(rt)  # sent, or crashed before it could (the crash ends the block)
                if outbox:
                    await rt.complete_callback(outbox[-1][0], "yes")
                await handle.result()
        async with open_runtime(SQLiteStore(path), workflows=WORKFLOWS, clock=VirtualClock()) as rt:
            handle = await rt.start(approval, "o", run_id="k")
            await idle(rt)  # a token is out (from either life), or the run ended
            # Every token handed out so far completes the run (the oldest may be all the
            # outside world ever saw), unless a completion accepted before the crash already did.
            for token, _ in outbox:
                try:
                    await rt.complete_callback(token, "yes")
                except CallbackTokenError as exc:
                    assert "already been completed" in str(exc), f"crash at write {n} ({when}): {exc}"
                else:
                    break
            assert await handle.result() == "yes", f"crash at write {n} ({when})"
        assert sends["count"] <= 2, f"crash at write {n} ({when}): sent {sends['count']} times"
        history = [e async for e in SQLiteStoreHistory(path)]
        assert sum(isinstance(e, CallbackCompleted) for e in history) == 1


class SQLiteStoreHistory:
    """Iterate over a finished run's stored history (the run id is "k")."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __aiter__(self) -> Any:
        return self._events()

    async def _events(self) -> Any:
        store = SQLiteStore(self.path)
        await store.start()
        try:
            rec = await store.get_run("k")
            assert rec is not None
            for event in [*(await store.get_history("k")), *rec.tail]:
                yield event
        finally:
            await store.close()


async def test_a_completion_and_the_timeout_at_the_same_instant_resolve_exactly_once(db: str) -> None:
    clock = VirtualClock()
    async with open_runtime(db, workflows=WORKFLOWS, clock=clock) as rt:
        handle = await rt.start(deadline, "o", run_id="race")
        await clock.sleep(3600)  # the callback's deadline is this very instant
        try:
            await rt.complete_callback(outbox[-1][0], "just in time")
            accepted = True
        except CallbackTokenError as exc:
            assert "timed out" in str(exc)
            accepted = False
        result = await handle.result()
        history = [e async for e in rt.history("race")]
    outcomes = [t for t in event_types(history) if t in ("CallbackCompleted", "CallbackFailed")]
    if accepted:
        assert result == "just in time" and outcomes == ["CallbackCompleted"]
    else:
        assert result["error"] == "States.Timeout" and outcomes == ["CallbackFailed"]


async def test_an_earlier_token_still_completes_and_is_then_used_up(tmp_path: Path) -> None:
    """The worker goes away while the sender runs; the restarted run sends a new token, and
    the first one (which the outside world may already hold) completes it, once."""
    hang = asyncio.Event()

    @activity(name="send_then_hang")
    async def send_then_hang(token: str) -> None:
        outbox.append((token, None))
        sent.changed()
        if len(outbox) == 1:
            await hang.wait()

    @workflow(name="resent")
    async def resent(ctx: RunContext) -> Any:
        return await ctx.wait_for_callback(send_then_hang)

    path = tmp_path / "resent.db"
    async with open_runtime(path, workflows=[resent], clock=VirtualClock()) as rt:
        await rt.start(resent, None, run_id="re")
        first = await next_token(1)
    async with open_runtime(path, workflows=[resent], clock=VirtualClock()) as rt:
        second = await next_token(2)
        assert second != first
        await rt.complete_callback(first, "answered with the first token")
        assert await rt.get_handle("re").result() == "answered with the first token"
        with pytest.raises(CallbackTokenError, match="already been completed"):
            await rt.complete_callback(first, "again")
        with pytest.raises(CallbackTokenError, match="has ended"):
            await rt.complete_callback(second, "the other one")


class _ReadsPaused(SQLiteStore):
    """A client's store whose next read, once armed, returns only after ``armed`` did."""

    armed: Any = None

    async def _after(self, value: Any) -> Any:
        if self.armed is not None:
            go, self.armed = self.armed, None
            await go()
        return value

    async def get_run(self, run_id: str) -> Any:
        return await self._after(await super().get_run(run_id))

    async def get_inbox(self, run_id: str) -> Any:
        return await self._after(await super().get_inbox(run_id))


async def test_a_used_token_is_refused_when_the_run_applies_it_between_the_clients_reads(tmp_path: Path) -> None:
    # Seen in CI (tests/durability/test_kill9_callbacks.py): a client checks a token against
    # the run and its inbox in two reads; the worker applying the first answer between them
    # took the message out of one before the other was read, and a used token was accepted.
    path = tmp_path / "reads.db"
    # The worker looks at its inbox every 0.3 s: the answer is applied while the client waits
    # between its reads, not before the first.
    async with open_runtime(path, workflows=WORKFLOWS, inbox_poll_interval=0.3) as rt:
        handle = await rt.start(two_callbacks, run_id="r")
        first = await next_token()
        await waiting(rt, "r")
        client_store = _ReadsPaused(path)
        async with open_runtime(client_store, workflows=[], worker=False, inbox_poll_interval=None) as client:
            await client.complete_callback(first, "yes")

            async def applied() -> None:  # the worker applies the answer meanwhile (and waits again)
                with anyio.fail_after(10):
                    await next_token(2)

            client_store.armed = applied
            with pytest.raises(CallbackTokenError, match="already been completed"):
                await client.complete_callback(first, "again")
            assert client_store.armed is None  # the pause happened between the two reads
            await client.complete_callback(await next_token(2), "two")
        assert await handle.result() == ["yes", "two"]
