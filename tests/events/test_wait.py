"""ctx.wait_for_event: matched by data, nothing lost before the wait, one event per wait."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from _support import idle, parked
from wayline import Event, EventTimeoutError, RunContext, RunStatus, open_runtime, workflow
from wayline.errors import InvalidArgumentError
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio


@workflow(name="pay")
async def pay(ctx: RunContext, order: str) -> dict[str, Any]:
    paid = await ctx.wait_for_event("payment/received", match={"order.id": order}, timeout=3600)
    return {"amount": paid.data["amount"], "seq": paid.seq, "id": paid.id}


@workflow(name="two")
async def two(ctx: RunContext, order: str) -> list[int]:
    got = []
    for _ in range(2):
        ev = await ctx.wait_for_event("tick", match={"order": order})
        got.append(ev.data["n"])
    return got


@workflow(name="impatient")
async def impatient(ctx: RunContext) -> str:
    try:
        await ctx.wait_for_event("never", timeout=30)
    except EventTimeoutError as exc:
        return f"timed out on {exc.name}"
    return "got it"


@workflow(name="late_then_wait")
async def late_then_wait(ctx: RunContext, order: str) -> int:
    await ctx.sleep(100)  # the event is sent meanwhile, before the wait begins
    ev = await ctx.wait_for_event("payment/received", match={"order.id": order})
    return int(ev.data["amount"])


def payment(order: str, amount: int) -> dict[str, Any]:
    return {"order": {"id": order}, "amount": amount}


async def test_a_waiting_run_gets_the_matching_event_only(db: str) -> None:
    async with open_runtime(db, workflows=[pay], clock=VirtualClock()) as rt:
        handle = await rt.start(pay, "o-1", run_id="p1")
        await parked(rt)
        await rt.send_event("payment/received", payment("o-2", 5))  # another order's
        await idle(rt)
        assert (await rt.describe("p1")).status is RunStatus.WAITING
        sent = await rt.send_event("payment/received", payment("o-1", 7), id="pay-7")
        assert await handle.result() == {"amount": 7, "seq": sent.seq, "id": "pay-7"}


async def test_an_event_sent_before_the_wait_is_seen(db: str) -> None:
    clock = VirtualClock()
    async with open_runtime(db, workflows=[late_then_wait], clock=clock) as rt:
        handle = await rt.start(late_then_wait, "o-9", run_id="l")
        await parked(rt)  # sleeping, not yet waiting for the event
        await rt.send_event("payment/received", payment("o-9", 42))
        assert await handle.result() == 42


async def test_events_from_before_the_run_was_created_are_not_seen(db: str) -> None:
    clock = VirtualClock()
    async with open_runtime(db, workflows=[pay], clock=clock) as rt:
        await rt.send_event("payment/received", payment("o-1", 1))
        await clock.sleep(1)
        handle = await rt.start(pay, "o-1", run_id="p")
        await parked(rt)
        await rt.send_event("payment/received", payment("o-1", 2))
        assert (await handle.result())["amount"] == 2


async def test_each_event_answers_one_wait_and_a_second_wait_gets_the_next(db: str) -> None:
    async with open_runtime(db, workflows=[two], clock=VirtualClock()) as rt:
        handle = await rt.start(two, "a", run_id="t")
        await rt.send_event("tick", {"order": "a", "n": 1})
        await rt.send_event("tick", {"order": "b", "n": 99})
        await rt.send_event("tick", {"order": "a", "n": 2})
        await rt.send_event("tick", {"order": "a", "n": 3})
        assert await handle.result() == [1, 2]


async def test_a_wait_times_out_on_the_virtual_clock(db: str) -> None:
    async with open_runtime(db, workflows=[impatient], clock=VirtualClock()) as rt:
        handle = await rt.start(impatient, run_id="i")
        assert await handle.result() == "timed out on never"
        # Its index row is gone: a late event wakes nobody.
        assert await rt.store.events.waiters("never", {}) == []  # type: ignore[attr-defined]


async def test_a_passivated_run_is_woken_by_its_event(db: str) -> None:
    async with open_runtime(db, workflows=[pay], clock=VirtualClock(), passivate_after=1) as rt:
        handle = await rt.start(pay, "o-5", run_id="pp")
        await rt.clock.sleep(10)
        assert rt.statistics().passivated == 1 and rt.statistics().live_runs == 0
        await rt.send_event("payment/received", payment("o-5", 3))
        assert (await handle.result())["amount"] == 3


async def test_a_restarted_run_returns_the_same_event(tmp_path: Path) -> None:
    db = str(tmp_path / "w.db")
    async with open_runtime(db, workflows=[two], clock=VirtualClock()) as rt:
        await rt.start(two, "a", run_id="t")
        await rt.send_event("tick", {"order": "a", "n": 1})
        await idle(rt)
    async with open_runtime(db, workflows=[two], clock=VirtualClock()) as rt:
        await rt.send_event("tick", {"order": "a", "n": 2})
        assert await rt.get_handle("t").result() == [1, 2]


async def test_bad_waits_are_refused() -> None:
    @workflow(name="bad")
    async def bad(ctx: RunContext, how: str) -> str:
        try:
            if how == "match":
                await ctx.wait_for_event("x", match={"a": [1]})
            else:
                await ctx.wait_for_event("x", timeout=-1)
        except InvalidArgumentError as exc:
            return str(exc)
        return "accepted"

    async with open_runtime(":memory:", workflows=[bad], clock=VirtualClock()) as rt:
        assert "'a' is [1]" in await (await rt.start(bad, "match")).result()
        assert "timeout must be >= 0" in await (await rt.start(bad, "timeout")).result()


def test_event_is_a_frozen_struct() -> None:
    ev = Event(name="n", data={"a": 1}, id="i", ts=1.0)
    with pytest.raises(AttributeError):
        ev.name = "m"  # type: ignore[misc]
