"""``wayline runs trace``: from a run to its trace in a viewer."""

from __future__ import annotations

import asyncio
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from wayline import open_runtime
from wayline.testing import VirtualClock

from .conftest import WORKFLOWS, Cli, order


def _traced_run(path: str) -> str:
    """Run "traced" with an SDK configured; the trace id its root span got."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    async def go() -> None:
        async with open_runtime(path, workflows=WORKFLOWS, clock=VirtualClock(), tracer_provider=provider) as rt:
            await (await rt.start(order, 3.0, run_id="traced")).result()

    asyncio.run(go())
    (root,) = [s for s in exporter.get_finished_spans() if s.name == "run order"]
    return f"{root.context.trace_id:032x}"


def test_trace_prints_the_runs_trace_id_and_the_viewers_link(cli: Cli) -> None:
    trace_id = _traced_run(cli.db)
    done = cli("runs", "trace", "traced", "--trace-url", "http://localhost:16686/trace/{trace_id}")
    assert done.code == 0, done.err
    assert done.out == f"trace {trace_id}  http://localhost:16686/trace/{trace_id}\n"
    as_json = cli("runs", "trace", "traced", "--json", WAYLINE_TRACE_URL="http://tempo/{run_id}/{trace_id}").json()
    assert as_json == {"run_id": "traced", "trace_id": trace_id, "url": f"http://tempo/traced/{trace_id}"}
    assert cli("runs", "trace", "traced").out == f"trace {trace_id}\n"


def test_a_run_without_a_trace_or_a_bad_template_says_why(cli: Cli, tmp_path: Path) -> None:
    untraced = cli("runs", "trace", "paid")  # ran with no SDK
    assert untraced.code == 1 and "has no trace" in untraced.err and "configure_telemetry" in untraced.err
    missing = cli("runs", "trace", "nope")
    assert missing.code == 1 and "nope" in missing.err
    _traced_run(cli.db)
    bad = cli("runs", "trace", "traced", "--trace-url", "http://viewer/")
    assert bad.code == 2 and "{trace_id}" in bad.err
    worse = cli("runs", "trace", "traced", "--trace-url", "http://viewer/{trace_id}/{span}")
    assert worse.code == 2 and "cannot be filled in" in worse.err
