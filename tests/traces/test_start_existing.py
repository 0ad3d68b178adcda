"""rt.start of a run id that exists: no second root, and a span that joins the run's trace or
links to it from the caller's."""

from __future__ import annotations

import pytest

from traces._spans import attributes, named, tracing
from wayline import RunContext, activity, open_runtime, workflow
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio


@activity(name="ship")
async def ship(order: str) -> str:
    return f"shipped {order}"


@workflow(name="order")
async def order(ctx: RunContext, order_id: str) -> str:
    return await ctx.run(ship, order_id)


async def test_starting_an_existing_run_joins_its_trace_or_links_to_it() -> None:
    provider, exporter = tracing()
    app = provider.get_tracer("app")
    async with open_runtime(":memory:", workflows=[order], clock=VirtualClock(), tracer_provider=provider) as rt:
        await (await rt.start(order, "o-1", run_id="o-1")).result()
        again = await rt.start(order, "o-1", run_id="o-1")  # no span active: it joins the run's trace
        with app.start_as_current_span("POST /orders") as caller:
            await rt.start(order, "o-1", run_id="o-1")  # from a request: in its trace, linked to the run
        assert await again.result() == "shipped o-1"
    spans = exporter.get_finished_spans()
    (root,) = named(spans, "run order")  # one root: the repeated starts made none
    joined, linked = named(spans, "start order")
    assert joined.parent is not None and joined.parent.span_id == root.context.span_id
    assert joined.context.trace_id == root.context.trace_id
    assert attributes(joined)["wayline.existing"] is True
    assert linked.parent is not None and linked.parent.span_id == caller.get_span_context().span_id
    assert [link.context.span_id for link in linked.links] == [root.context.span_id]
    assert len(named(spans, "step ship")) == 1  # and the run did not run again

