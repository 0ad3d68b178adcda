"""``ctx.patched``: new code changes a workflow whose runs are in flight, and each run takes the
branch that matches what it already did."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from wayline import RunContext, RunFailed, activity, open_runtime, workflow
from wayline.history import Patched, StepSucceeded
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio

calls: list[str] = []


@pytest.fixture(autouse=True)
def _reset() -> None:
    calls.clear()


@activity(name="price")
async def price(order: str) -> float:
    calls.append(f"price:{order}")
    return 10.0


@activity(name="fee")
async def fee(order: str) -> float:
    calls.append(f"fee:{order}")
    return 1.5


@workflow(name="checkout")
async def checkout_v1(ctx: RunContext, order: str) -> float:
    total = await ctx.run(price, order)
    await ctx.wait_signal("paid")
    return total


@workflow(name="checkout")
async def checkout_v2(ctx: RunContext, order: str) -> float:
    total = await ctx.run(price, order)
    if ctx.patched("fee"):  # new: a fee step before the wait
        total += await ctx.run(fee, order)
    await ctx.wait_signal("paid")
    return total


@workflow(name="checkout")
async def checkout_unguarded(ctx: RunContext, order: str) -> float:
    total = await ctx.run(price, order)
    total += await ctx.run(fee, order)  # the same change, without ctx.patched
    await ctx.wait_signal("paid")
    return total


async def _park(db: Path, run_id: str) -> None:
    """A run of the old code that has passed its first step and waits."""
    async with open_runtime(db, workflows=[checkout_v1], clock=VirtualClock()) as rt:
        await rt.start(checkout_v1, run_id, run_id=run_id)
        await rt.clock.sleep(1)


async def _history(rt: Any, run_id: str) -> list[Any]:
    return [e async for e in rt.history(run_id)]


async def test_a_run_in_flight_keeps_the_old_branch_and_a_new_run_takes_the_new_one(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    await _park(db, "old")
    async with open_runtime(db, workflows=[checkout_v2], clock=VirtualClock()) as rt:
        await rt.start(checkout_v2, "new", run_id="new")
        await rt.clock.sleep(1)
        await rt.signal("old", "paid")
        await rt.signal("new", "paid")
        with anyio.fail_after(30):  # a run that took the wrong branch would never end
            assert await rt.get_handle("old").result() == 10.0  # no fee: it had passed that point
            assert await rt.get_handle("new").result() == 11.5
        old, new = await _history(rt, "old"), await _history(rt, "new")
    assert [e.change for e in new if isinstance(e, Patched)] == ["fee"]
    assert not [e for e in old if isinstance(e, Patched)]
    assert [e.step for e in new if isinstance(e, StepSucceeded)] == ["price", "fee"]
    assert calls == ["price:old", "price:new", "fee:new"]


async def test_the_replay_check_passes_the_guarded_change_and_catches_the_unguarded_one(tmp_path: Path) -> None:
    # What ctx.patched prevents: the run in flight meets a step where it was waiting on a signal.
    from wayline.persistence import SQLiteStore
    from wayline.runtime import ReplayVerdict, check_replay

    db = tmp_path / "w.db"
    await _park(db, "old")
    store = SQLiteStore(db)
    await store.start()
    try:
        guarded = await check_replay(store, checkout_v2)
        unguarded = await check_replay(store, checkout_unguarded)
    finally:
        await store.close()
    assert [(r.run_id, r.verdict) for r in guarded] == [("old", ReplayVerdict.OK)]
    assert [(r.run_id, r.verdict) for r in unguarded] == [("old", ReplayVerdict.NONDETERMINISTIC)]
    assert "step #1 was 'signal:paid'" in (unguarded[0].message or "")
    assert "asks for 'fee'" in (unguarded[0].message or "")
    assert calls == ["price:old"]  # replaying ran nothing


async def test_the_new_branch_is_kept_across_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    async with open_runtime(db, workflows=[checkout_v2], clock=VirtualClock()) as rt:
        await rt.start(checkout_v2, "n", run_id="n")
        await rt.clock.sleep(1)  # parked after price and fee
    async with open_runtime(db, workflows=[checkout_v2], clock=VirtualClock()) as rt:
        await rt.signal("n", "paid")
        assert await rt.get_handle("n").result() == 11.5
        patched = [e for e in await _history(rt, "n") if isinstance(e, Patched)]
    assert calls == ["price:n", "fee:n"]  # replayed, not run again
    assert [(e.change, e.index) for e in patched] == [("fee", 1)]  # recorded once


async def test_a_change_asked_again_answers_the_same_and_a_new_change_at_the_frontier_is_taken() -> None:
    answers: list[tuple[str, bool]] = []

    @workflow(name="asks")
    async def asks(ctx: RunContext) -> None:
        answers.append(("a", ctx.patched("a")))
        await ctx.run(price, "x")
        answers.append(("a-again", ctx.patched("a")))
        answers.append(("b", ctx.patched("b")))

    async with open_runtime(":memory:", workflows=[asks], clock=VirtualClock()) as rt:
        await (await rt.start(asks)).result()
    assert answers == [("a", True), ("a-again", True), ("b", True)]


def test_a_change_needs_an_id() -> None:
    from wayline.runtime import RunContext as Ctx

    ctx = Ctx("r", "w", "1", VirtualClock())
    with pytest.raises(ValueError, match="non-empty string"):
        ctx.patched("")
    with pytest.raises(RuntimeError, match="running workflow body"):
        ctx.patched("x")


async def test_an_unguarded_step_where_the_run_was_waiting_fails_it_with_a_nondeterminism_error(
    tmp_path: Path,
) -> None:
    # The run waits on "paid" at position #1; the new code puts a step there without
    # ctx.patched. The run must not drop its wait and carry on with the new step (what
    # `wayline replay` reports as a departure): it fails, naming both, and runs nothing new.
    db = tmp_path / "w.db"
    await _park(db, "old")
    async with open_runtime(db, workflows=[checkout_unguarded], clock=VirtualClock()) as rt:
        with anyio.fail_after(30), pytest.raises(RunFailed) as failed:
            await rt.get_handle("old").result()
    assert failed.value.error == "NonDeterminismError"
    assert "step #1 was 'signal:paid'" in (failed.value.cause or "")
    assert "asks for 'fee'" in (failed.value.cause or "")
    assert calls == ["price:old"]  # the new step never ran


@workflow(name="nap")
async def nap_v1(ctx: RunContext, order: str) -> float:
    total = await ctx.run(price, order)
    await ctx.sleep(60)
    return total


@workflow(name="nap")
async def nap_v2(ctx: RunContext, order: str) -> float:
    total = await ctx.run(price, order)
    if ctx.patched("fee"):
        total += await ctx.run(fee, order)
    await ctx.sleep(60)
    return total


@workflow(name="nap")
async def nap_unguarded(ctx: RunContext, order: str) -> float:
    total = await ctx.run(price, order)
    total += await ctx.run(fee, order)
    await ctx.sleep(60)
    return total


@pytest.mark.parametrize(("code", "expected"), [(nap_v2, 10.0), (nap_unguarded, None)])
async def test_a_run_asleep_where_new_code_puts_a_step(tmp_path: Path, code: Any, expected: float | None) -> None:
    db = tmp_path / "w.db"
    async with open_runtime(db, workflows=[nap_v1], clock=VirtualClock()) as rt:
        await rt.start(nap_v1, "old", run_id="old")
        await rt.clock.sleep(1)  # asleep at position #1
    async with open_runtime(db, workflows=[code], clock=VirtualClock()) as rt:
        handle = rt.get_handle("old")
        with anyio.fail_after(30):
            if expected is not None:
                assert await handle.result() == expected  # the old branch: its own sleep, kept
            else:
                with pytest.raises(RunFailed, match=r"step #1 was 'wayline.sleep'.*asks for 'fee'"):
                    await handle.result()
    assert calls == ["price:old"]
