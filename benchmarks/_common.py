"""Small pieces shared by every scenario module (child-process side).

Scenario functions are ``async def f(params: dict) -> dict``: they receive the
JSON parameters the harness chose and return a dict of numeric metrics, plus an
optional ``"note"`` string. They raise :class:`NotReady` when the system under
test lacks the feature (for wayline, while the core is still being written) and
:class:`Skipped` when an optional peer package is absent; any other exception is
reported by the harness as ``error: <exception>`` in that row.
"""

from __future__ import annotations

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
    """An optional peer package is not installed."""

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


class Deadline:
    """A wall-clock budget: peers that cannot finish a large N are time-boxed."""

    def __init__(self, budget_s: float) -> None:
        self.start = time.perf_counter()
        self.budget_s = budget_s

    @property
    def remaining(self) -> float:
        return max(0.0, self.budget_s - (time.perf_counter() - self.start))

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start
