"""A yardstick, not a runtime: what journaling a step costs in Python before any I/O.

The ``journal-no-io`` throughput row runs the throughput workload (N concurrent runs of K
trivial activities) through the least a journaling runtime does per step in the event
loop, and nothing else: the workflow body yields a command, the activity is awaited, the
step's two history events are built and appended to the run's snapshot (wayline's own
`RunRecord`, so its encoding costs what wayline's does), the snapshot is encoded, and the
run waits on a future until a "writer" resolves every queued future once per loop
iteration. Each run also encodes a start and a final snapshot. There is no SQLite, no
thread, no actor, no supervision, no inbox and no telemetry.

Compared with the bare baseline in the same table, it shows how much of the bare ceiling
any runtime that keeps a history can reach on this interpreter, whatever its design.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Generator
from typing import Any

import msgspec

from wayline.persistence import RunRecord, RunStarted, RunStatus, RunSucceeded, StepStarted, StepSucceeded
from wayline.persistence._codec import encode_raw

from ._common import Deadline, Metrics, Params
from ._wayline import _discarding_tracer_provider


class _Step:
    """The command a body awaits: the runtime performs it and sends back the result."""

    __slots__ = ("args", "fn")

    def __init__(self, fn: Any, args: tuple[Any, ...]) -> None:
        self.fn = fn
        self.args = args

    def __await__(self) -> Generator[Any, Any, Any]:
        result = yield self
        return result


async def _activity(i: int) -> int:
    return i


async def _body(n: int, k: int) -> int:
    for i in range(k):
        await _Step(_activity, (i,))
    return n


class _Writer:
    """Resolves every queued future once per loop iteration, writing nothing."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queued: list[tuple[str, bytes, asyncio.Future[None]]] = []
        self.scheduled = False

    def submit(self, run_id: str, data: bytes) -> asyncio.Future[None]:
        fut = self.loop.create_future()
        self.queued.append((run_id, data, fut))
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self._flush)
        return fut

    def _flush(self) -> None:
        self.scheduled = False
        batch, self.queued = self.queued, []
        for _, _, fut in batch:
            fut.set_result(None)


async def _run(writer: _Writer, run_id: str, n: int, k: int, clock: Any) -> int:
    now = clock()
    record = RunRecord(
        run_id=run_id,
        workflow="steps",
        status=RunStatus.RUNNING,
        input=[n, k],
        created_at=now,
        updated_at=now,
        tail=(RunStarted(ts=now, workflow="steps", version="1", input=[n, k]),),
    )
    await writer.submit(run_id, encode_raw(record))
    body: Coroutine[Any, Any, int] = _body(n, k)
    value: Any = None
    index = 0
    while True:
        try:
            step = body.send(value)
        except StopIteration as stop:
            end = clock()
            record = msgspec.structs.replace(
                record,
                status=RunStatus.SUCCEEDED,
                output=stop.value,
                updated_at=end,
                ended_at=end,
                tail=(*record.tail, RunSucceeded(ts=end, output=stop.value)),
            )
            await writer.submit(run_id, encode_raw(record))
            return int(stop.value)
        started = clock()
        value = await step.fn(*step.args)
        done = clock()
        events = (
            StepStarted(ts=started, step="step", index=index, attempt=1),
            StepSucceeded(ts=done, step="step", index=index, attempt=1, result=value),
        )
        index += 1
        record = msgspec.structs.replace(record, updated_at=done, steps=index, tail=(*record.tail, *events))
        await writer.submit(run_id, encode_raw(record))


async def throughput(params: Params) -> Metrics:
    """N concurrent runs of K trivial activities, each step journaled but nothing written."""
    n, k = int(params["n"]), int(params["k"])
    loop = asyncio.get_running_loop()
    writer = _Writer(loop)
    clock = loop.time
    timer = Deadline()
    await asyncio.gather(*(_run(writer, f"r{i}", i, k, clock) for i in range(n)))
    elapsed = timer.elapsed
    return {
        "steps_per_s": n * k / elapsed,
        "cpu_us_per_step": timer.cpu_us_per(n * k),
        "seconds": elapsed,
        "steps": n * k,
    }


async def sdk_spans(params: Params) -> Metrics:
    """The spans wayline makes for N runs of K steps, through the OpenTelemetry SDK alone
    (the tracing rows' provider: a BatchSpanProcessor with a discarding exporter), and no
    workflow at all: what the SDK charges for them. Per run, as wayline's trace model has it:
    the root (3 attributes, ended at once), the segment (4), and a span per step (6), current
    while the activity would run."""
    from opentelemetry import context, trace

    n, k = int(params["n"]), int(params["k"])
    async with contextlib.AsyncExitStack() as stack:
        tracer = _discarding_tracer_provider(stack).get_tracer("wayline")
        timer = Deadline()
        for i in range(n):
            run_id = f"r{i}"
            identity = {"wayline.run_id": run_id, "wayline.workflow": "steps", "wayline.version": "1"}
            root = tracer.start_span("run steps", attributes=identity)
            root.end()
            parent = trace.set_span_in_context(root)
            segment = tracer.start_span("execute steps", context=parent, attributes={**identity, "wayline.segment": 1})
            for index in range(k):
                attributes = {
                    "wayline.run_id": run_id,
                    "wayline.workflow": "steps",
                    "wayline.version": "1",
                    "wayline.step": "step",
                    "wayline.step.index": index,
                    "wayline.attempt": 1,
                }
                step = tracer.start_span("step step", context=parent, attributes=attributes)
                context.detach(context.attach(trace.set_span_in_context(step)))
                step.end()
            segment.end()
            if i % 100 == 99:
                await asyncio.sleep(0)  # a loop that also serves others
        elapsed = timer.elapsed
        return {
            "steps_per_s": n * k / elapsed,
            "cpu_us_per_step": timer.cpu_us_per(n * k),
            "seconds": elapsed,
            "steps": n * k,
        }
