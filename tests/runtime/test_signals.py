"""Signals through the durable inbox: ordering, timeouts, races, errors, restarts."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import anyio
import pytest

from _support import idle, parked
from wayline import (
    PayloadError,
    RunAlreadyFinishedError,
    RunContext,
    RunNotFoundError,
    RunStatus,
    SignalTimeoutError,
    open_runtime,
    workflow,
)
from wayline.persistence import SignalReceived, SignalTimedOut, SQLiteStore
from wayline.testing import FaultInjectingStore, SimulatedCrash, VirtualClock

pytestmark = pytest.mark.anyio


@workflow(name="collect")
async def collect(ctx: RunContext, n: int) -> list[Any]:
    got = []
    for _ in range(n):
        got.append(await ctx.wait_signal("item"))
        ctx.vars["seen"] = len(got)
    return got


@workflow(name="patient")
async def patient(ctx: RunContext, patience: float) -> Any:
    try:
        return await ctx.wait_signal("go", timeout=patience)
    except SignalTimeoutError as exc:
        return f"gave up waiting for {exc.name}"


async def wait_until_waiting(rt: Any, run_id: str) -> None:
    """Once the run has parked on its wait (the runtime runs no other)."""
    await parked(rt)
    assert (await rt.describe(run_id)).status is RunStatus.WAITING


async def test_signals_sent_before_the_wait_are_kept_in_order(db: str) -> None:
    async with open_runtime(db, workflows=[collect], clock=VirtualClock()) as rt:
        handle = await rt.start(collect, 3, run_id="c")
        for i in range(3):
            await rt.signal("c", "item", {"i": i})
        assert await handle.result() == [{"i": 0}, {"i": 1}, {"i": 2}]
        events = [e async for e in rt.history("c")]
        assert [e.payload for e in events if isinstance(e, SignalReceived)] == [{"i": 0}, {"i": 1}, {"i": 2}]
        assert await rt.store.get_inbox("c") == []  # every message consumed


async def test_a_waiting_run_shows_what_it_waits_for_and_its_live_vars(db: str) -> None:
    async with open_runtime(db, workflows=[collect], clock=VirtualClock()) as rt:
        handle = await rt.start(collect, 2, run_id="w")
        await wait_until_waiting(rt, "w")
        assert (await rt.describe("w")).waiting_for == ("signal:item",)
        await rt.signal("w", "item", 1)
        await idle(rt)  # it took the signal and waits for the next
        assert (await rt.describe("w")).vars == {"seen": 1}
        await rt.signal("w", "item", 2)
        assert await handle.result() == [1, 2]


async def test_wait_signal_times_out_on_the_virtual_clock(db: str) -> None:
    clock = VirtualClock()
    async with open_runtime(db, workflows=[patient], clock=clock) as rt:
        t0 = clock.time()
        assert await (await rt.start(patient, 600.0, run_id="p")).result() == "gave up waiting for go"
        assert clock.time() - t0 == pytest.approx(600.0)
        events = [e async for e in rt.history("p")]
        assert any(isinstance(e, SignalTimedOut) for e in events)


async def test_a_signal_and_its_timeout_arriving_together_resolve_exactly_once(db: str) -> None:
    clock = VirtualClock(autojump=False)
    async with open_runtime(db, workflows=[patient], clock=clock) as rt:
        handle = await rt.start(patient, 10.0, run_id="r")
        await wait_until_waiting(rt, "r")
        clock.advance(10.0)  # the timeout fires (queued in the mailbox) ...
        await rt.signal("r", "go", "late")  # ... and the signal is committed right after
        result = await handle.result()
        events = [e async for e in rt.history("r")]
    outcomes = [e for e in events if isinstance(e, (SignalReceived, SignalTimedOut))]
    assert len(outcomes) == 1
    assert result == ("late" if isinstance(outcomes[0], SignalReceived) else "gave up waiting for go")


async def test_signal_errors_are_precise(db: str) -> None:
    async with open_runtime(db, workflows=[patient], clock=VirtualClock()) as rt:
        with pytest.raises(RunNotFoundError):
            await rt.signal("nope", "go", 1)
        handle = await rt.start(patient, 1.0, run_id="done")
        await handle.result()
        with pytest.raises(RunAlreadyFinishedError) as info:
            await rt.signal("done", "go", 1)
        assert info.value.status == "SUCCEEDED" and "'go'" in str(info.value)
        live = await rt.start(patient, 1000.0, run_id="live")
        with pytest.raises(PayloadError):
            await rt.signal("live", "go", object())
        await rt.signal("live", "go", "fine")
        assert await live.result() == "fine"


@pytest.mark.parametrize("when", ["before", "after"])
async def test_a_signal_accepted_before_a_crash_is_delivered_after_restart(tmp_path: Path, when: str) -> None:
    path = tmp_path / "s.db"
    async with open_runtime(path, workflows=[collect], clock=VirtualClock()) as rt:
        await rt.start(collect, 1, run_id="k")
        await wait_until_waiting(rt, "k")
    # crash at the signal's own inbox write: before it, the signal was never accepted
    # (rt.signal raised); after it, it was accepted and must not be lost
    store = FaultInjectingStore(SQLiteStore(path), crash_at=1, when=when)
    accepted = False
    with pytest.raises((SimulatedCrash, BaseExceptionGroup)):
        async with open_runtime(store, workflows=[collect], clock=VirtualClock(), worker=False) as rt:
            await rt.signal("k", "item", "payload")
            accepted = True
    assert not accepted
    async with open_runtime(path, workflows=[collect], clock=VirtualClock()) as rt:
        if when == "before":
            await rt.signal("k", "item", "payload")  # the caller retries what was refused
        assert await rt.get_handle("k").result() == ["payload"]


async def test_a_signal_committed_by_another_process_reaches_the_live_run(tmp_path: Path) -> None:
    """The inbox poller delivers messages other processes commit (the CLI, other replicas);
    a second runtime on the same file plays that other process here."""
    path = tmp_path / "shared.db"
    async with open_runtime(path, workflows=[collect], inbox_poll_interval=0.01) as owner:
        handle = await owner.start(collect, 1, run_id="x")
        await wait_until_waiting(owner, "x")
        async with open_runtime(path, workflows=[], worker=False, inbox_poll_interval=None) as other:
            await other.signal("x", "item", "from afar")
        with anyio.fail_after(5):
            assert await handle.result() == ["from afar"]


@workflow(name="ignores_signals")
async def ignores_signals(ctx: RunContext, n: int) -> int:
    for i in range(3):
        await ctx.sleep(0.001 * (i + n % 3))  # durable timers: checkpoints the signals race with
    return n


async def test_signals_racing_a_run_to_its_end_are_refused_or_cleaned_up(db: str) -> None:
    # The runs never wait for "poke", and each is poked as it goes on to its end. A poke must
    # either be refused (RunAlreadyFinishedError) or be committed and then removed by the run's
    # final checkpoint: no message may outlive its run in the inbox.
    async with open_runtime(db, workflows=[ignores_signals], clock=VirtualClock()) as rt:
        handles = [await rt.start(ignores_signals, i, run_id=f"i{i}") for i in range(20)]
        accepted = refused = 0

        async def poke(run_id: str) -> None:
            nonlocal accepted, refused
            for _ in range(5):
                try:
                    await rt.signal(run_id, "poke", None)
                    accepted += 1
                except RunAlreadyFinishedError as exc:
                    assert exc.run_id == run_id
                    refused += 1
                    return
                await asyncio.sleep(0)

        await asyncio.gather(*(poke(h.run_id) for h in handles))
        assert sorted([await h.result() for h in handles]) == list(range(20))
        for h in handles:
            with pytest.raises(RunAlreadyFinishedError):
                await rt.signal(h.run_id, "poke", None)
        assert accepted > 0  # the test did race messages with running runs
        assert await rt.store.inbox_since(0) == []
