"""Throttle: starts beyond a pace are QUEUED, durably, and start as the pace allows."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from _postgres import fresh_database
from _support import idle
from wayline import (
    Concurrency,
    Event,
    RunCancelled,
    RunContext,
    RunStatus,
    Throttle,
    activity,
    on_event,
    open_runtime,
    workflow,
)
from wayline.errors import FlowSpecError
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio

#: (key, run id, virtual time of its start), appended by the runs below.
STARTS: list[tuple[str, str, float]] = []
#: (run id, "start" or "end", virtual time), for the runs under a concurrency limit too.
SPANS: list[tuple[str, str, float]] = []


@activity(name="started_at")
async def started_at(key: str, run_id: str, at: float) -> None:
    STARTS.append((key, run_id, at))


@activity(name="span")
async def span(run_id: str, what: str, at: float) -> None:
    SPANS.append((run_id, what, at))


@workflow(name="paced", throttle=Throttle(2, 10))
async def paced(ctx: RunContext, n: int) -> int:
    await ctx.run(started_at, "", ctx.run_id, ctx.now())
    return n


@workflow(name="bursty", throttle=Throttle(1, 10, burst=2))
async def bursty(ctx: RunContext, n: int) -> int:
    await ctx.run(started_at, "", ctx.run_id, ctx.now())
    return n


@workflow(
    name="per_user",
    triggers=[on_event("mail/send")],
    throttle=Throttle(1, 60, key=lambda e: e.data["user"]),
    priority=lambda e: e.data.get("p", 0),
)
async def per_user(ctx: RunContext, event: Event) -> str:
    await ctx.run(started_at, event.data["user"], ctx.run_id, ctx.now())
    return str(event.data["n"])


@workflow(name="both", throttle=Throttle(1, 5), concurrency=Concurrency(1))
async def both(ctx: RunContext, n: int) -> int:
    await ctx.run(span, ctx.run_id, "start", ctx.now())
    await ctx.sleep(20)  # longer than the pace: the slot is the tighter limit
    await ctx.run(span, ctx.run_id, "end", ctx.now())
    return n


def most_in_a_window(times: list[float], period: float) -> int:
    """The most starts in any half-open window of ``period`` seconds."""
    times = sorted(times)
    return max((sum(1 for t in times if s <= t < s + period) for s in times), default=0)


@pytest.fixture(autouse=True)
def _fresh_logs() -> None:
    STARTS.clear()
    SPANS.clear()


async def test_a_throttle_spreads_starts_and_queues_the_rest(db: str) -> None:
    async with open_runtime(db, workflows=[paced], clock=VirtualClock()) as rt:
        t0 = rt.clock.time()
        handles = [await rt.start(paced, i, run_id=f"p{i}") for i in range(7)]
        queued = await rt.list_runs(status=RunStatus.QUEUED)
        assert {r.run_id for r in queued} == {f"p{i}" for i in range(1, 7)}  # queued, not dropped
        why = (await rt.describe("p3")).waiting_for[0]
        assert why.startswith("throttled: 2 starts per 10 s; next start at 2026-01-01T00:00:05"), why
        assert "2 queued ahead" in why
        assert [await h.result() for h in handles] == list(range(7))
    times = [at - t0 for _, _, at in STARTS]
    assert len(times) == 7
    assert most_in_a_window(times, 10) == 2
    assert sorted(times) == [0, 5, 10, 15, 20, 25, 30]  # evenly spread: period / limit apart


async def test_a_burst_starts_at_once_then_the_pace_holds(db: str) -> None:
    async with open_runtime(db, workflows=[bursty], clock=VirtualClock()) as rt:
        t0 = rt.clock.time()
        handles = [await rt.start(bursty, i) for i in range(6)]
        for h in handles:
            await h.result()
    times = sorted(at - t0 for _, _, at in STARTS)
    assert times == [0, 0, 0, 10, 20, 30]
    assert most_in_a_window(times, 10) == 3  # limit + burst


async def test_keys_are_paced_apart_and_priority_goes_first(db: str) -> None:
    async with open_runtime(db, workflows=[per_user], clock=VirtualClock()) as rt:
        t0 = rt.clock.time()
        sent = await rt.send_events(
            [
                Event(name="mail/send", data={"user": "ana", "n": 1}),
                Event(name="mail/send", data={"user": "ana", "n": 2}),
                Event(name="mail/send", data={"user": "ana", "n": 3, "p": 5}),
                Event(name="mail/send", data={"user": "bo", "n": 4}),
            ]
        )
        assert all(len(s.run_ids) == 1 for s in sent)
        why = (await rt.describe(sent[1].run_ids[0])).waiting_for[0]
        assert "for key 'ana'" in why and "1 queued ahead, priority 0" in why
        for s in sent:
            await rt.get_handle(s.run_ids[0]).result()
    order = [(key, round(at - t0)) for key, _, at in STARTS]
    ana = [run_id for key, run_id, _ in STARTS if key == "ana"]
    assert ana == [sent[0].run_ids[0], sent[2].run_ids[0], sent[1].run_ids[0]]  # priority 5 before arrival
    assert sorted(order) == [("ana", 0), ("ana", 60), ("ana", 120), ("bo", 0)]


async def test_a_throttle_and_a_concurrency_limit_both_hold(db: str) -> None:
    async with open_runtime(db, workflows=[both], clock=VirtualClock()) as rt:
        t0 = rt.clock.time()
        handles = [await rt.start(both, i, run_id=f"b{i}") for i in range(3)]
        assert [await h.result() for h in handles] == [0, 1, 2]
    starts = sorted(at - t0 for _, what, at in SPANS if what == "start")
    ends = sorted(at - t0 for _, what, at in SPANS if what == "end")
    assert starts == [0, 20, 40] and ends == [20, 40, 60]  # one at a time, never beside another


async def test_a_throttled_run_can_be_cancelled_while_queued(db: str) -> None:
    async with open_runtime(db, workflows=[paced], clock=VirtualClock()) as rt:
        for i in range(4):
            await rt.start(paced, i, run_id=f"c{i}")
        await rt.cancel("c2", reason="not needed")
        with pytest.raises(RunCancelled):
            await rt.get_handle("c2").result()
        assert await rt.get_handle("c3").result() == 3
    assert [run_id for _, run_id, _ in STARTS] == ["c0", "c1", "c3"]


async def _restart_with_queued_runs(db: str) -> None:
    first = VirtualClock()
    async with open_runtime(db, workflows=[paced], clock=first) as rt:
        t0 = rt.clock.time()
        for i in range(5):
            await rt.start(paced, i, run_id=f"r{i}")
        await idle(rt)
        assert len(await rt.list_runs(status=RunStatus.QUEUED)) == 4
        # Closed with four runs queued behind the pace.
    # The next process, its clock going on from where the first one's stopped.
    async with open_runtime(db, workflows=[paced], clock=VirtualClock(first.time())) as rt:
        for i in range(5):
            assert await rt.get_handle(f"r{i}").result() == i
    # A run's first step may run again after the restart (a step is at least once): the
    # first time it ran is when the run started.
    first_start: dict[str, float] = {}
    for _, run_id, at in STARTS:
        first_start.setdefault(run_id, at - t0)
    assert sorted(first_start) == [f"r{i}" for i in range(5)]
    times = sorted(first_start.values())
    assert all(b - a >= 5 for a, b in itertools.pairwise(times)), times  # the pace held
    assert most_in_a_window(times, 10) == 2


async def test_throttled_runs_survive_a_restart_on_sqlite(tmp_path: Path) -> None:
    await _restart_with_queued_runs(str(tmp_path / "w.db"))


async def test_throttled_runs_survive_a_restart_on_postgres() -> None:
    with fresh_database() as url:
        await _restart_with_queued_runs(url)


async def test_bad_throttles_are_refused() -> None:
    async def body(ctx: RunContext, x: Any) -> None:
        return None

    with pytest.raises(FlowSpecError, match="Throttle limit must be an int >= 1, got 0"):
        workflow(name="w", throttle=Throttle(0, 10))(body)
    with pytest.raises(FlowSpecError, match=r"Throttle limit must be an int >= 1, got 2\.5"):
        workflow(name="w", throttle=Throttle(2.5, 10))(body)  # type: ignore[arg-type]
    with pytest.raises(FlowSpecError, match="Throttle period must be seconds > 0"):
        workflow(name="w", throttle=Throttle(1, "1m"))(body)  # type: ignore[arg-type]
    with pytest.raises(FlowSpecError, match="Throttle burst must be an int >= 0"):
        workflow(name="w", throttle=Throttle(1, 10, burst=-1))(body)
    with pytest.raises(FlowSpecError, match="Throttle key must be a plain function"):
        workflow(name="w", throttle=Throttle(1, 10, key="user"))(body)  # type: ignore[arg-type]
    with pytest.raises(FlowSpecError, match="throttle= takes Throttle"):
        workflow(name="w", throttle=(1, 10))(body)  # type: ignore[arg-type]
    workflow(name="w", throttle=Throttle(1, 10), priority=lambda x: 1)(body)  # priority orders its queue


async def test_the_throttle_wakes_itself_without_the_poller(tmp_path: Path) -> None:
    # No inbox poller: only the throttle's own timer on the runtime's clock can start the
    # queued runs, each exactly when the pace allows.
    async with open_runtime(
        str(tmp_path / "t.db"), workflows=[paced], clock=VirtualClock(), inbox_poll_interval=None
    ) as rt:
        t0 = rt.clock.time()
        handles = [await rt.start(paced, i) for i in range(4)]
        for h in handles:
            await h.result()
    assert sorted(at - t0 for _, _, at in STARTS) == [0, 5, 10, 15]
