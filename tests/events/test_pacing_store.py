"""The throttle and debounce tables of every store: a pace is counted under the key's lock,
so two stores on one database pacing one key at once never let more through than it allows;
a run let go stays marked until its next stage has it; a debounce keeps one run per key."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from wayline.persistence import Throttled, pace

from .test_flow_store import two_stores

pytestmark = pytest.mark.anyio

KINDS = ["memory", "sqlite", "postgres"]


def test_the_pace_spreads_starts_and_allows_a_burst() -> None:
    tat = None
    allowed = []
    for _ in range(4):  # 2 per 10 s with a burst of 1, all asked at t=0
        ok, at = pace(tat, 0.0, 2, 10, 1)
        allowed.append(ok)
        if ok:
            tat = at
    assert allowed == [True, True, False, False]
    assert pace(tat, 0.0, 2, 10, 1) == (False, 5.0)  # the next start 5 s on (10 s / 2)
    assert pace(tat, 5.0, 2, 10, 1) == (True, 15.0)


@pytest.mark.parametrize("kind", KINDS)
async def test_two_stores_pacing_one_key_let_through_only_what_the_pace_allows(kind: str, tmp_path: Path) -> None:
    async with two_stores(kind, tmp_path) as (a, b):
        for i in range(20):
            entry = Throttled(run_id=f"r{i:02}", group="g", key="k", priority=i % 2, limit=2, period=10, burst=1)
            await a.pacing.throttle_enqueue(entry)
        let_go: list[list[str]] = []

        async def admit(store: Any, now: float) -> None:
            ids, _ = await store.pacing.throttle_admit("g", "k", 2, 10, 1, now)
            let_go.append(ids)

        await asyncio.gather(*(admit(s, 0.0) for s in (a, b, a, b)))
        first = [r for ids in let_go for r in ids]
        assert len(first) == 2  # 1 + burst at once, however many admit together
        assert first == ["r01", "r03"]  # priority 1 first, then arrival
        let_go.clear()
        await asyncio.gather(*(admit(s, 5.0) for s in (a, b)))
        assert [r for ids in let_go for r in ids] == ["r05"]
        assert await a.pacing.throttle_passed() == ["r01", "r03", "r05"]  # until their next stage has them
        assert {"r01", "r05", "r00"} <= await b.pacing.held()
        await a.pacing.throttle_done("r01")
        assert await b.pacing.throttle_passed() == ["r03", "r05"]
        assert await a.pacing.withdraw("r00") and not await a.pacing.withdraw("r00")
        pos = await b.pacing.throttle_position("r02")
        assert pos is not None and pos.entry.limit == 2 and pos.entry.burst == 1 and pos.tat == 15.0


@pytest.mark.parametrize("kind", KINDS)
async def test_a_debounce_keeps_one_run_per_key_until_it_is_due(kind: str, tmp_path: Path) -> None:
    async with two_stores(kind, tmp_path) as (a, b):
        first = await a.pacing.debounce("g", "k", "run-1", 0.0, 10, 25)
        assert first.created and first.run_id == "run-1" and first.due_at == 10.0
        again = await b.pacing.debounce("g", "k", "run-2", 8.0, 10, 25)
        assert not again.created and again.run_id == "run-1" and again.due_at == 18.0
        capped = await a.pacing.debounce("g", "k", "run-3", 17.0, 10, 25)
        assert capped.run_id == "run-1" and capped.due_at == 25.0  # max_wait after the first start
        other = await b.pacing.debounce("g", "other", "run-4", 20.0, 10, None)
        assert other.created and other.due_at == 30.0
        found = await a.pacing.debounced("run-1")
        assert found is not None and found.count == 3 and found.first_at == 0.0
        assert await b.pacing.next_due() == 25.0
        assert await a.pacing.take_due(24.0) == []
        assert await a.pacing.take_due(25.0) == ["run-1"]
        assert await b.pacing.take_due(25.0) == []  # taken once
        late = await b.pacing.debounce("g", "k", "run-5", 26.0, 10, 25)
        assert late.created and late.run_id == "run-5"  # a new burst, a new run
        # A start after a burst's due time, before its timer fired: the due run is handed
        # back (to be started) and the start opens a new burst.
        missed = await a.pacing.debounce("g", "other", "run-6", 31.0, 10, None)
        assert missed.created and missed.due == "run-4"
        assert await b.pacing.withdraw("run-5") and await a.pacing.debounced("run-5") is None
