"""What a live waiting run holds in memory: the Python objects a run parked on a signal
(with a timeout, so a timer too) keeps, measured with tracemalloc.

The benchmark (``python -m benchmarks mailbox``) reports the resident memory of a fresh
process; this test pins the part the runtime's own code allocates, so a change that makes
every waiting run heavier (a container per run, a partial, a task) fails here. The bound
has room for the interpreter's own variation, not for a new object per run.
"""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

import pytest

from wayline import RunContext, open_runtime, workflow
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    # The objects a waiting run holds do not depend on the loop, and under tracemalloc the
    # uvloop run of this test took 251 s here (asyncio: 3 s), past the suite's 120 s timeout.
    return "asyncio"

RUNS = 400
#: Bytes per waiting run that wayline's own code may allocate and keep (4,080 measured
#: 2026-12-08 on CPython 3.11; 5,140 before timers, ctx.patched and the run's empty tables
#: were made lean).
BOUND = 4_300

_PACKAGE = str(Path(__import__("wayline").__file__).parent)


@workflow(name="parked_on_signal")
async def parked_on_signal(ctx: RunContext, n: int) -> int:
    got: int = await ctx.wait_signal("go", timeout=30 * 86400.0)
    return got + n


def _held_by_wayline(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot) -> int:
    """Bytes allocated between the snapshots, still alive, by a line of wayline's code or
    by the workflow body (the innermost frame that is one of them)."""
    held = 0
    for stat in after.compare_to(before, "traceback"):
        ours = any(f.filename.startswith(_PACKAGE) or f.filename == __file__ for f in stat.traceback)
        if ours and stat.size_diff > 0:
            held += stat.size_diff
    return held


async def test_a_live_waiting_run_stays_small(tmp_path: Path) -> None:
    clock = VirtualClock()
    async with open_runtime(str(tmp_path / "m.db"), workflows=[parked_on_signal], clock=clock) as rt:
        await rt.start(parked_on_signal, -1, run_id="warm-up")  # first-use caches, not per run
        await clock.sleep(1)
        gc.collect()
        tracemalloc.start(25)
        try:
            before = tracemalloc.take_snapshot()
            handles = [await rt.start(parked_on_signal, i, run_id=f"r{i}") for i in range(RUNS)]
            await clock.sleep(1)
            assert rt.statistics().waiting_runs == RUNS + 1
            gc.collect()
            after = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
        per_run = _held_by_wayline(before, after) / RUNS
        assert per_run <= BOUND, f"a live waiting run holds {per_run:,.0f} B of wayline's objects (bound {BOUND:,})"
        for i, handle in enumerate(handles[:3]):  # still real runs: they finish on their signal
            await rt.signal(f"r{i}", "go", 10)
            assert await handle.result() == 10 + i
