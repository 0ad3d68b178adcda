"""A traced process for the kill -9 trace test: python trace_worker.py DB SPANS start|resume [uvloop].

Spans are written to SPANS as JSON lines the moment they end (a simple span processor with
a file exporter), so the parent test sees what a process exported before it was killed.
``start`` begins a 20-step run (id "k") under a caller span; ``resume`` reopens DB, lets
recovery finish the run and prints its result as JSON on stdout.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from wayline import RunContext, activity, open_runtime, workflow

STEPS = 20


class JsonLinesExporter(SpanExporter):
    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with open(self.path, "a", encoding="utf-8") as f:
            for s in spans:
                row = {
                    "name": s.name,
                    "trace_id": f"{s.context.trace_id:032x}",
                    "span_id": f"{s.context.span_id:016x}",
                    "parent_id": f"{s.parent.span_id:016x}" if s.parent else None,
                    "links": [f"{link.context.span_id:016x}" for link in s.links],
                    "attributes": dict(s.attributes or {}),
                    "events": [{"name": e.name, "attributes": dict(e.attributes or {})} for e in s.events],
                }
                f.write(json.dumps(row) + "\n")
        return SpanExportResult.SUCCESS


@activity(name="tick")
async def tick(i: int) -> int:
    await asyncio.sleep(0.02)
    return i * i


@workflow(name="twenty")
async def twenty(ctx: RunContext) -> int:
    return sum([await ctx.run(tick, i) for i in range(STEPS)])


async def main(db: str, spans: str, mode: str) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesExporter(spans)))
    async with open_runtime(db, workflows=[twenty], tracer_provider=provider) as rt:
        if mode == "start":
            with provider.get_tracer("client").start_as_current_span("client request"):
                handle = await rt.start(twenty, run_id="k")
        else:
            handle = rt.get_handle("k")
        result = await handle.result()
    provider.shutdown()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    db, spans, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    if len(sys.argv) > 4 and sys.argv[4] == "uvloop":
        import uvloop

        uvloop.run(main(db, spans, mode))
    else:
        asyncio.run(main(db, spans, mode))
