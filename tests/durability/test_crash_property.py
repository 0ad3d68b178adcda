"""Property: for any workflow shape and any crash point, restart gives the clean outcome.

Hypothesis draws a workflow plan (steps, gathers, sleeps, flaky steps with retries) and a
write at which the process dies (before or after it commits); the restarted run must end
with the clean run's result and vars, re-executing no more steps than were in flight.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from _support import find_crash
from wayline import RetryPolicy, RunContext, activity, open_runtime, workflow
from wayline.persistence import SQLiteStore
from wayline.testing import FaultInjectingStore, VirtualClock

executions: Counter[str] = Counter()
remote_failures: Counter[str] = Counter()  # survives the "crash": it is another system's state


@activity(name="pstep")
async def pstep(key: str, acc: int) -> int:
    executions[key] += 1
    return (acc * 31 + len(key)) % 1_000_003


@activity(name="pflaky", retry=RetryPolicy(max_attempts=4, interval=1.0, backoff_rate=2.0))
async def pflaky(key: str, fails: int, acc: int) -> int:
    executions[key] += 1
    if remote_failures[key] < fails:
        remote_failures[key] += 1
        raise ConnectionError(f"{key} unavailable")
    return acc + 7


@activity(name="pdoomed")
async def pdoomed(key: str) -> str:
    executions[key] += 1
    if key.endswith(".0"):
        raise ValueError(f"{key} is doomed")
    return key


@workflow(name="planned")
async def planned(ctx: RunContext, plan: list[list[Any]]) -> int:
    acc = 1
    for j, (kind, arg) in enumerate(plan):
        if kind == "step":
            acc = await ctx.run(pstep, f"s{j}", acc)
        elif kind == "gather":
            parts = await ctx.gather(*(ctx.run(pstep, f"g{j}.{m}", acc) for m in range(arg)))
            acc = sum(parts) % 1_000_003
        elif kind == "sleep":
            await ctx.sleep(arg)
        elif kind == "flaky_gather":  # retries (and their backoffs) inside a group
            parts = await ctx.gather(ctx.run(pflaky, f"f{j}.0", arg, acc), ctx.run(pflaky, f"f{j}.1", 1, acc))
            acc = sum(parts) % 1_000_003
        elif kind == "tolerant_map":  # item 0 fails for good, tolerated
            parts = await ctx.map(pdoomed, [f"m{j}.{m}" for m in range(arg)], tolerated_failure_count=1)
            acc = (acc + len(repr(parts))) % 1_000_003
        else:
            acc = await ctx.run(pflaky, f"f{j}", arg, acc)
        ctx.vars[f"after{j}"] = acc
    return acc


OPS = st.one_of(
    st.tuples(st.just("step"), st.just(0)),
    st.tuples(st.just("gather"), st.integers(2, 3)),
    st.tuples(st.just("sleep"), st.sampled_from([1, 60, 86400])),
    st.tuples(st.just("flaky"), st.integers(1, 2)),
    st.tuples(st.just("tolerant_map"), st.integers(1, 3)),
    st.tuples(st.just("flaky_gather"), st.integers(1, 2)),
)
PLANS = st.lists(OPS, min_size=1, max_size=5).map(lambda ops: [list(op) for op in ops])


async def run_plan(store: Any, plan: list[list[Any]], passivate: bool) -> tuple[int, dict[str, Any]]:
    # passivate_after=0: a run that only waits leaves memory at once and is reloaded on wake
    after = 0.0 if passivate else None
    async with open_runtime(store, workflows=[planned], clock=VirtualClock(), passivate_after=after) as rt:
        out = await (await rt.start(planned, plan, run_id="p")).result()
        return out, (await rt.describe("p")).vars


async def check(plan: list[list[Any]], crash_fraction: float, when: str, passivate: bool, tmp: Path) -> None:
    executions.clear()
    remote_failures.clear()
    counter = FaultInjectingStore(SQLiteStore(tmp / "clean.db"))
    clean = await run_plan(counter, plan, passivate)
    clean_counts = Counter(executions)
    n = 1 + int(crash_fraction * counter.writes) % counter.writes

    executions.clear()
    remote_failures.clear()
    path = tmp / "crash.db"
    try:
        await run_plan(FaultInjectingStore(SQLiteStore(path), crash_at=n, when=when), plan, passivate)  # type: ignore[arg-type]
    except BaseException as exc:
        if find_crash(exc) is None:
            raise
    else:
        raise AssertionError(f"no crash at write {n}")
    assert await run_plan(SQLiteStore(path), plan, passivate) == clean

    widths = {"gather": lambda arg: arg, "tolerant_map": lambda arg: arg, "flaky_gather": lambda arg: 2}
    in_flight = max([widths.get(kind, lambda arg: 1)(arg) for kind, arg in plan])
    extra = executions - clean_counts
    missing = clean_counts - executions
    assert not missing, (plan, n, when, missing)
    assert sum(extra.values()) <= in_flight, (plan, n, when, extra)
    assert max(extra.values(), default=0) <= 1, (plan, n, when, extra)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    plan=PLANS,
    crash_fraction=st.floats(0, 1, exclude_max=True),
    when=st.sampled_from(["before", "after"]),
    passivate=st.booleans(),
)
def test_any_plan_survives_a_crash_at_any_write(
    loop: str, plan: list[list[Any]], crash_fraction: float, when: str, passivate: bool
) -> None:
    with tempfile.TemporaryDirectory(prefix="wayline-prop-") as tmp:
        coro = check(plan, crash_fraction, when, passivate, Path(tmp))
        if loop == "uvloop":
            import uvloop

            uvloop.run(coro)
        else:
            asyncio.run(coro)
