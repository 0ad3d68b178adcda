"""Small pieces shared by every scenario module (child-process side).

Scenario functions are ``async def f(params: dict) -> dict``: they receive the
JSON parameters the harness chose and return a dict of numeric metrics, plus an
optional ``"note"`` string. They raise :class:`NotReady` when the system under
test lacks the feature (for wayline, while the core is still being written) and
:class:`Skipped` when something optional is absent; any other exception is
reported by the harness as ``error: <exception>`` in that row.
"""

from __future__ import annotations

import asyncio
import resource
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

Params = dict[str, Any]
Metrics = dict[str, Any]

#: The one install hint every skipped peer row shows.
BENCH_HINT = "pip install --group bench"


class NotReady(Exception):
    """The system under test does not offer what the scenario needs (yet)."""


class Skipped(Exception):
    """Something optional is missing: a peer package, or the shared conformance cases."""

    def __init__(self, package: str) -> None:
        super().__init__(f"{package} not installed ({BENCH_HINT})")
        self.package = package


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` percentile (0..100) of ``values`` by linear interpolation."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def latency_metrics(samples_s: Sequence[float]) -> Metrics:
    """p50/p99/mean in milliseconds from samples in seconds."""
    ms = [s * 1000.0 for s in samples_s]
    return {
        "p50_ms": percentile(ms, 50),
        "p99_ms": percentile(ms, 99),
        "mean_ms": statistics.fmean(ms),
        "samples": len(ms),
    }


def db_file(params: Params, name: str) -> Path:
    """A database path inside the scratch directory the harness made for this child."""
    return Path(params["workdir"]) / name


def cpu_seconds() -> float:
    """User + system CPU of this process, all threads (the SQLite threads included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Deadline:
    """A wall-clock budget (peers that cannot finish a large N are time-boxed) and CPU meter."""

    def __init__(self, budget_s: float = float("inf")) -> None:
        self.start = time.perf_counter()
        self.cpu_start = cpu_seconds()
        self.budget_s = budget_s

    def cpu_us_per(self, count: int) -> float | None:
        """CPU microseconds spent since the start, per ``count`` units of work (None for none)."""
        if count <= 0:
            return None  # a time-boxed peer that finished nothing has no per-step cost
        return (cpu_seconds() - self.cpu_start) / count * 1e6

    @property
    def remaining(self) -> float:
        return max(0.0, self.budget_s - (time.perf_counter() - self.start))

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start


async def settle(quiet_s: float = 0.002, streak: int = 3) -> float:
    """Wait until the event loop is idle and return when it became so (perf_counter).

    After a restart the runtime spawns one task per recovered run; they are live
    once each has run up to its first wait. Nothing reports that, so we watch
    the loop: while tasks are still resuming, a short sleep comes back late;
    ``streak`` punctual sleeps in a row mean everything is parked. The returned
    time is the start of that quiet streak, so the probe does not add its own
    length to the measurement.
    """
    quiet = 0
    quiet_since = time.perf_counter()
    while quiet < streak:
        t = time.perf_counter()
        await asyncio.sleep(quiet_s)
        late = time.perf_counter() - t - quiet_s
        if late < 0.001:
            if quiet == 0:
                quiet_since = t
            quiet += 1
        else:
            quiet = 0
    return quiet_since
