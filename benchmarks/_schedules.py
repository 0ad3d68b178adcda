"""Schedule fire lag: from a fire's nominal time to its run's body starting, at N schedules.

Two shapes of the same N schedules, on a SQLite file and the real clock:

- ``spread``: each fires every ``period`` seconds, their phases spread evenly over the period
  (N / period fires a second, one or two at a time);
- ``burst``: all fire at the same instants, every ``period`` seconds (the worst case: one pass
  decides N fires, stores N records in one transaction, then starts N runs).

The lag of a fire is the time the run's body first reads the clock minus the fire's nominal
time (no jitter): the timer's wake-up, the pass (due read, decision, compare-and-swap write),
the run's create (group-committed) and its actor's start. The baseline row is the floor an
asyncio program gets for the same instants: a ``loop.call_at`` timer per fire, its lag the
callback's clock reading minus the instant (no store, no run).
"""

from __future__ import annotations

import asyncio
import time

from ._common import Metrics, Params, db_file, percentile


def _lag_metrics(lags_s: list[float], fires: int, seconds: float) -> Metrics:
    ms = sorted(lag * 1000.0 for lag in lags_s)
    return {
        "p50_ms": percentile(ms, 50),
        "p99_ms": percentile(ms, 99),
        "max_ms": ms[-1],
        "fires": fires,
        "fires_per_s": fires / seconds,
    }


def _phase(i: int, n: int, period: float, shape: str) -> float:
    return 0.0 if shape == "burst" else period * i / n


def _instants(n: int, period: float, shape: str, start: float, until: float) -> list[tuple[int, float]]:
    """(schedule, nominal fire time) of every fire from ``start`` (schedule i first fires at
    ``start`` plus its phase) until before ``until``."""
    out = []
    for i in range(n):
        k = 0
        while (at := start + _phase(i, n, period, shape) + k * period) < until:
            out.append((i, at))
            k += 1
    return out


async def baseline(params: Params) -> Metrics:
    """One ``loop.call_at`` per fire, as asyncio schedules it: the lag's floor."""
    n, period, seconds, shape = int(params["n"]), float(params["period"]), float(params["seconds"]), params["shape"]
    loop = asyncio.get_running_loop()
    start = time.time() + 1.0
    fires = _instants(n, period, shape, start, start + seconds)
    lags: list[float] = []
    done = asyncio.Event()

    def fire(at: float) -> None:
        lags.append(time.time() - at)
        if len(lags) == len(fires):
            done.set()

    offset = loop.time() - time.time()  # the loop's clock against the wall clock
    for _, at in fires:
        loop.call_at(at + offset, fire, at)
    await asyncio.wait_for(done.wait(), seconds + 30)
    return _lag_metrics(lags, len(fires), seconds)


async def wayline(params: Params) -> Metrics:
    """N schedules of one workflow in a runtime on a SQLite file; every fire's lag."""
    from wayline import RunContext, open_runtime, workflow

    n, period, seconds, shape = int(params["n"]), float(params["period"]), float(params["seconds"]), params["shape"]

    @workflow(name="tick")
    async def tick(ctx: RunContext) -> float:
        return ctx.now()  # when the body starts: the end of the fire's lag

    async with open_runtime(db_file(params, "schedules.db"), workflows=[tick]) as rt:
        # Anchored a little ahead, so creating N schedules does not eat into the first fires.
        start = time.time() + 2.0 + n / 2000
        for i in range(n):
            at = start + _phase(i, n, period, shape)
            await rt.create_schedule(f"s{i}", tick, every=period, start_at=at, catchup_window=3600)
        await asyncio.sleep(max(0.0, start - time.time()) + seconds + 0.5)
        until = start + seconds
        # Every run started by now has ended (each is one body step); read them all.
        runs = [r for r in await rt.list_runs(workflow="tick") if r.metadata["scheduled_at"] < until]
        for r in runs:
            if r.output is None:
                await rt.get_handle(r.run_id).result()
        runs = [r for r in await rt.list_runs(workflow="tick") if r.metadata["scheduled_at"] < until]
        lags = [r.output - r.metadata["scheduled_at"] for r in runs]
        expected = len(_instants(n, period, shape, start, until))
        missed = sum(i.missed + i.skipped for i in await rt.list_schedules())
    if len(lags) != expected or missed:
        raise RuntimeError(f"{len(lags)} fires ran of {expected} expected ({missed} missed or skipped)")
    return _lag_metrics(lags, len(lags), seconds)
