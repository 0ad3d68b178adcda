"""Temporal workflow and activity definitions for ``_temporal``.

They live in their own module because Temporal's sandbox re-imports the module
that defines a workflow; keeping it small (and free of the harness) keeps that
cheap. Importing this module requires ``temporalio``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import activity, workflow

_TIMEOUT = timedelta(seconds=60)

# Activity executions in this process, for the time-boxed throughput count.
executed = 0


@activity.defn
async def bench_step(i: int) -> int:
    """A trivial activity: the step costs only what Temporal adds."""
    global executed
    executed += 1
    return i


@workflow.defn
class BenchSteps:
    """K trivial activities, one after the other."""

    @workflow.run
    async def run(self, n: int, k: int) -> int:
        for i in range(k):
            await workflow.execute_activity(bench_step, i, start_to_close_timeout=_TIMEOUT)
        return n


@workflow.defn
class BenchWaiter:
    """Waits for one ``go`` signal and returns its payload."""

    def __init__(self) -> None:
        self.payload: Any = None
        self.received = False

    @workflow.signal
    def go(self, payload: Any) -> None:
        self.payload = payload
        self.received = True

    @workflow.run
    async def run(self, n: int) -> Any:
        await workflow.wait_condition(lambda: self.received)
        return self.payload
