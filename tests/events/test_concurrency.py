"""Concurrency limits: durable QUEUED runs, slots per key, priority then arrival order."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from _support import idle
from wayline import (
    Concurrency,
    Event,
    RunCancelled,
    RunContext,
    RunStatus,
    activity,
    on_event,
    open_runtime,
    workflow,
)
from wayline.errors import FlowSpecError
from wayline.persistence import Custom
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio

#: (key, run id, start or end, virtual time), appended by the steps of the runs below.
LOG: list[tuple[str, str, str, float]] = []


@activity(name="mark")
async def mark(key: str, run_id: str, what: str, at: float) -> None:
    LOG.append((key, run_id, what, at))


@workflow(
    name="per_customer",
    triggers=[on_event("order/created")],
    concurrency=Concurrency(2, key=lambda e: e.data["customer"]),
)
async def per_customer(ctx: RunContext, event: Event) -> int:
    customer = event.data["customer"]
    await ctx.run(mark, customer, ctx.run_id, "start", ctx.now())
    await ctx.sleep(1 + event.seq % 3)
    await ctx.run(mark, customer, ctx.run_id, "end", ctx.now())
    return event.seq


@workflow(name="one_at_a_time", concurrency=Concurrency(1), priority=lambda job: job["p"])
async def one_at_a_time(ctx: RunContext, job: dict[str, Any]) -> str:
    await ctx.run(mark, "", ctx.run_id, "start", ctx.now())
    await ctx.sleep(10)
    return str(job["name"])


def max_overlap(log: list[tuple[str, str, str, float]]) -> dict[str, int]:
    """The most runs of each key between their start and end marks at one moment."""
    spans: dict[str, dict[str, list[float]]] = defaultdict(dict)
    for key, run_id, what, at in log:
        spans[key].setdefault(run_id, [0.0, 0.0])[0 if what == "start" else 1] = at
    out = {}
    for key, runs in spans.items():
        points = sorted([(s, 1) for s, _ in runs.values()] + [(e, -1) for _, e in runs.values()])
        level = best = 0
        for _, step in points:  # an end at t sorts before a start at t: the slot is free then
            level += step
            best = max(best, level)
        out[key] = best
    return out


@pytest.fixture(autouse=True)
def _fresh_log() -> None:
    LOG.clear()


async def test_many_events_for_ten_keys_never_exceed_the_limit_per_key(db: str) -> None:
    n = 300 if "postgresql" in db else 1000
    async with open_runtime(db, workflows=[per_customer], clock=VirtualClock()) as rt:
        sent = await rt.send_events(
            [Event(name="order/created", data={"customer": f"c{i % 10}"}, id=f"e{i}") for i in range(n)]
        )
        assert all(len(s.run_ids) == 1 for s in sent)
        queued = await rt.list_runs(status=RunStatus.QUEUED)
        active = await rt.list_runs(status=[RunStatus.RUNNING, RunStatus.WAITING])
        assert len(active) <= 20 and queued  # the rest wait durably, in the store
        why = (await rt.describe(queued[-1].run_id)).waiting_for[0]
        assert why.startswith("a slot: concurrency limit 2 for key 'c") and "2 running" in why
        for s in sent:
            assert await rt.get_handle(s.run_ids[0]).result() == s.seq
    starts = [e for e in LOG if e[2] == "start"]
    assert len(starts) == n
    assert max_overlap(LOG) == {f"c{i}": 2 for i in range(10)}
    # Arrival order within a key: the runs of c0 started in the order their events came.
    # (Two runs admitted together may mark their starts in either order: off by one at most.)
    c0 = [run_id for key, run_id, what, _ in LOG if key == "c0" and what == "start"]
    arrival = {r: i for i, r in enumerate(sorted(c0, key=lambda r: int(r.rsplit(":", 1)[1])))}
    assert all(abs(arrival[r] - i) <= 1 for i, r in enumerate(c0)), c0


async def test_queued_runs_start_by_priority_then_arrival(db: str) -> None:
    async with open_runtime(db, workflows=[one_at_a_time], clock=VirtualClock()) as rt:
        first = await rt.start(one_at_a_time, {"name": "first", "p": 0}, run_id="first")
        await rt.start(one_at_a_time, {"name": "low", "p": -5}, run_id="low")
        await rt.start(one_at_a_time, {"name": "a", "p": 3}, run_id="a")
        await rt.start(one_at_a_time, {"name": "b", "p": 3}, run_id="b")
        await rt.start(one_at_a_time, {"name": "urgent", "p": 9}, run_id="urgent")
        assert (await rt.describe("low")).status is RunStatus.QUEUED
        assert "3 queued ahead, priority -5" in (await rt.describe("low")).waiting_for[0]
        assert await first.result() == "first"
        for run_id in ("urgent", "a", "b", "low"):
            await rt.get_handle(run_id).result()
        history = [e async for e in rt.history("low")]
        dequeued = [e for e in history if isinstance(e, Custom) and e.name == "RunDequeued"]
        assert dequeued and dequeued[0].details["queued_for"] == 40.0
    assert [run_id for _, run_id, _, _ in LOG] == ["first", "urgent", "a", "b", "low"]


async def test_a_queued_run_can_be_cancelled_and_its_place_is_given_up(db: str) -> None:
    async with open_runtime(db, workflows=[one_at_a_time], clock=VirtualClock()) as rt:
        await rt.start(one_at_a_time, {"name": "x", "p": 0}, run_id="x")
        await rt.start(one_at_a_time, {"name": "y", "p": 0}, run_id="y")
        await rt.start(one_at_a_time, {"name": "z", "p": 0}, run_id="z")
        await rt.cancel("y", reason="not needed")
        with pytest.raises(RunCancelled):
            await rt.get_handle("y").result()
        assert await rt.get_handle("z").result() == "z"
    assert [run_id for _, run_id, _, _ in LOG] == ["x", "z"]


async def test_the_limit_holds_across_a_restart(tmp_path: Path) -> None:
    db = str(tmp_path / "w.db")
    async with open_runtime(db, workflows=[per_customer], clock=VirtualClock()) as rt:
        await rt.send_events([Event(name="order/created", data={"customer": "k"}) for _ in range(6)])
        await idle(rt)
        assert len(await rt.list_runs(status=RunStatus.QUEUED)) == 4
        # The runtime closes with two runs mid-sleep, holding both slots.
    async with open_runtime(db, workflows=[per_customer], clock=VirtualClock()) as rt:
        for run in await rt.list_runs(workflow="per_customer"):
            await rt.get_handle(run.run_id).result()
    assert len([e for e in LOG if e[2] == "start"]) == 6
    assert max_overlap(LOG)["k"] == 2


async def test_bad_flow_specs_are_refused() -> None:
    async def body(ctx: RunContext, x: Any) -> None:
        return None

    with pytest.raises(FlowSpecError, match="limit must be an int >= 1"):
        workflow(name="w", concurrency=Concurrency(0))(body)
    with pytest.raises(FlowSpecError, match="count_waiting must be True or False, got 'no'"):
        workflow(name="w", concurrency=Concurrency(1, count_waiting="no"))(body)  # type: ignore[arg-type]
    with pytest.raises(FlowSpecError, match="declare concurrency"):
        workflow(name="w", priority=lambda x: 1)(body)
    high = workflow(name="high", concurrency=Concurrency(1), priority=lambda x: 1000)(body)
    async with open_runtime(":memory:", workflows=[high], clock=VirtualClock()) as rt:
        with pytest.raises(FlowSpecError, match="priority 1000 is out of range"):
            await rt.start(high, 1, run_id="h")
        assert await rt.list_runs() == []  # refused before anything was stored
