"""A run that waits (here for a signal, for as long as it takes) is already in the viewer while
it waits: its root and its finished steps reach the collector within the batch delay, with
nothing pointing at a span that has not been sent."""

from __future__ import annotations

import anyio
import pytest

from _otlp_collector import running_collector
from wayline import RunContext, activity, open_runtime, workflow
from wayline.runtime import configure_telemetry

pytestmark = pytest.mark.anyio


@activity(name="prepare")
async def prepare(order: str) -> str:
    return order.upper()


@workflow(name="approval")
async def approval(ctx: RunContext, order: str) -> str:
    prepared = await ctx.run(prepare, order)
    verdict = await ctx.wait_signal("verdict")  # no passivation: the segment stays open
    return f"{prepared}: {verdict}"


async def test_a_waiting_run_is_visible_with_its_root_before_it_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    with running_collector() as (got, url):
        providers = configure_telemetry(url, set_global=False, metrics=False)
        try:
            async with open_runtime(":memory:", workflows=[approval], tracer_provider=providers.tracer_provider) as rt:
                handle = await rt.start(approval, "o-7", run_id="a-7")
                # Waited for in a thread: the runtime goes on meanwhile.
                await anyio.to_thread.run_sync(
                    got.wait_until, lambda: {"run approval", "step prepare"} <= {s.name for s in got.spans()}
                )
                while_waiting = got.spans()
                assert not (await rt.describe("a-7")).status.finished
                await rt.signal("a-7", "verdict", "yes")
                assert await handle.result() == "O-7: yes"
        finally:
            providers.shutdown()
        after = got.spans()
    (root,) = [s for s in while_waiting if s.name == "run approval"]
    assert not root.parent_span_id
    ids = {s.span_id for s in while_waiting}
    assert all(s.parent_span_id in ids for s in while_waiting if s is not root)  # no orphan, even now
    assert "execute approval" not in {s.name for s in while_waiting}  # still open: nobody's parent
    assert {"execute approval", "wait signal verdict"} <= {s.name for s in after}
