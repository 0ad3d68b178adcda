"""Where a run's time goes: sleeps, waits, backoffs, queueing and a state machine's Wait and
Retry are spans with their real start and end (the runtime's clock: virtual here, so each
duration is exact), children of the run's root like its steps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from _support import Changes
from traces._spans import attributes, named, seconds, tracing
from wayline import CallbackError, RunContext, StateMachine, activity, open_runtime, workflow
from wayline.errors import SignalTimeoutError
from wayline.testing import VirtualClock
from wayline.testing._clock import DEFAULT_START

pytestmark = pytest.mark.anyio

CLOCK: dict[str, VirtualClock] = {}


@activity(name="slow")
async def slow(seconds: float) -> float:
    await CLOCK["clock"].sleep(seconds)  # virtual time passes while the activity works
    return seconds


@workflow(name="pair")
async def pair(ctx: RunContext) -> Any:
    return await ctx.gather(ctx.run(slow, 5.0), ctx.run(slow, 1.0))


async def test_time_queued_for_an_activity_slot_is_a_span_inside_the_step() -> None:
    provider, exporter = tracing()
    clock = CLOCK["clock"] = VirtualClock()
    async with open_runtime(
        ":memory:", workflows=[pair], clock=clock, tracer_provider=provider, max_concurrent_activities=1
    ) as rt:
        assert await (await rt.start(pair)).result() == [5.0, 1.0]
    spans = exporter.get_finished_spans()
    first, second = named(spans, "step slow")
    (queued,) = named(spans, "queued")
    assert queued.parent is not None and queued.parent.span_id == second.context.span_id
    assert seconds(queued, first.start_time) == (0.0, 5.0)  # until the first one let go
    assert seconds(second, first.start_time) == (0.0, 6.0)
    assert attributes(queued)["wayline.step.index"] == 1


@workflow(name="impatient")
async def impatient(ctx: RunContext) -> str:
    try:
        return str(await ctx.wait_signal("go", timeout=90))
    except SignalTimeoutError:
        return "gave up"


handed: list[str] = []
handing = Changes()


@activity(name="hand_out")
async def hand_out(token: str) -> None:
    handed.append(token)
    handing.changed()


@workflow(name="asks")
async def asks(ctx: RunContext) -> str:
    try:
        return str(await ctx.wait_for_callback(hand_out, timeout=600))
    except CallbackError as exc:
        return exc.error


async def test_waits_that_time_out_last_their_timeout() -> None:
    provider, exporter = tracing()
    handed.clear()
    async with open_runtime(
        ":memory:", workflows=[impatient, asks], clock=VirtualClock(), tracer_provider=provider
    ) as rt:
        assert await (await rt.start(impatient)).result() == "gave up"
        assert await (await rt.start(asks)).result() == "States.Timeout"
    spans = exporter.get_finished_spans()
    (signal,) = named(spans, "wait signal go")
    assert seconds(signal) == (0.0, 90.0)
    assert attributes(signal)["wayline.outcome"] == "timed_out"
    assert attributes(signal)["wayline.signal.name"] == "go"
    (callback,) = named(spans, "wait callback")
    assert seconds(callback) == (0.0, 600.0)
    assert attributes(callback)["wayline.outcome"] == "timed_out"


async def test_a_callback_answered_later_is_a_span_to_the_answer() -> None:
    provider, exporter = tracing()
    handed.clear()
    clock = VirtualClock()
    async with open_runtime(":memory:", workflows=[asks], clock=clock, tracer_provider=provider) as rt:
        handle = await rt.start(asks)
        await handing.until(lambda: bool(handed))
        await clock.sleep(42)
        await rt.complete_callback(handed[0], "yes")
        assert await handle.result() == "yes"
    (callback,) = named(exporter.get_finished_spans(), "wait callback")
    assert seconds(callback) == (0.0, 42.0)
    assert attributes(callback)["wayline.outcome"] == "completed"


failures = {"left": 0}


async def price(payload: dict[str, Any]) -> dict[str, Any]:
    if failures["left"]:
        failures["left"] -= 1
        raise ValueError("busy")
    return {"total": 3}


MACHINE = {
    "StartAt": "Pause",
    "States": {
        "Pause": {"Type": "Wait", "Seconds": 30, "Next": "Price"},
        "Price": {
            "Type": "Task",
            "Resource": "price",
            "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 2, "BackoffRate": 2, "MaxAttempts": 3}],
            "End": True,
        },
    },
}


async def test_a_state_machines_wait_and_retry_are_the_same_spans_as_code_firsts() -> None:
    provider, exporter = tracing()
    failures["left"] = 2
    sm = StateMachine(MACHINE, name="pricing", resources={"price": price})
    async with open_runtime(":memory:", workflows=[sm], clock=VirtualClock(), tracer_provider=provider) as rt:
        assert await (await rt.start(sm, {})).result() == {"total": 3}
    spans = exporter.get_finished_spans()
    (root,) = named(spans, "run pricing")
    (pause,) = named(spans, "sleep")
    assert seconds(pause, root.start_time) == (0.0, 30.0)
    assert attributes(pause)["wayline.state"] == "Pause"
    assert attributes(pause)["wayline.wait.kind"] == "timer"
    backoffs = named(spans, "backoff")
    assert [seconds(b, root.start_time) for b in backoffs] == [(30.0, 32.0), (32.0, 36.0)]
    assert {attributes(b)["wayline.state"] for b in backoffs} == {"Price"}
    attempts = named(spans, "step Price")
    assert [attributes(a)["wayline.attempt"] for a in attempts] == [1, 2, 3]
    assert [[e.name for e in a.events] for a in attempts] == [["exception", "wayline.retry"]] * 2 + [[]]
    assert {s.parent.span_id for s in spans if s.parent} == {root.context.span_id}


async def test_a_state_machines_callback_task_is_a_wait_callback_span() -> None:
    provider, exporter = tracing()
    tokens: list[str] = []
    sent = Changes()

    async def send(payload: dict[str, Any]) -> None:
        tokens.append(payload["token"])
        sent.changed()

    sm = StateMachine(
        {
            "StartAt": "Approve",
            "States": {
                "Approve": {
                    "Type": "Task",
                    "Resource": "send.waitForTaskToken",
                    "Parameters": {"token.$": "$$.Task.Token"},
                    "End": True,
                }
            },
        },
        name="approval",
        resources={"send.waitForTaskToken": send},
    )
    clock = VirtualClock()
    async with open_runtime(":memory:", workflows=[sm], clock=clock, tracer_provider=provider) as rt:
        handle = await rt.start(sm, {})
        await sent.until(lambda: bool(tokens))
        await clock.sleep(7)
        await rt.complete_callback(tokens[0], {"ok": True})
        assert await handle.result() == {"ok": True}
    (wait,) = named(exporter.get_finished_spans(), "wait callback")
    assert seconds(wait)[1] == pytest.approx(7.0)
    assert attributes(wait)["wayline.outcome"] == "completed"
    assert str(attributes(wait)["wayline.step.id"]).startswith("Approve#")


async def test_a_wait_state_interrupted_by_a_restart_keeps_its_start(tmp_path: Path) -> None:
    provider, exporter = tracing()
    sm = StateMachine(
        {"StartAt": "Pause", "States": {"Pause": {"Type": "Wait", "Seconds": 100, "End": True}}}, name="pause"
    )
    path = tmp_path / "w.db"
    async with open_runtime(path, workflows=[sm], clock=VirtualClock(), tracer_provider=provider) as rt:
        await rt.start(sm, {}, run_id="w")
        await rt.clock.sleep(10)  # the runtime closes 10 s into the wait
    assert named(exporter.get_finished_spans(), "sleep") == []
    later = VirtualClock(DEFAULT_START + 50)
    async with open_runtime(path, workflows=[sm], clock=later, tracer_provider=provider) as rt:
        assert await rt.get_handle("w").result() == {}
    spans = exporter.get_finished_spans()
    (root,) = named(spans, "run pause")
    (pause,) = named(spans, "sleep")
    assert seconds(pause, root.start_time) == (0.0, 100.0)  # one wait, begun in the first process
