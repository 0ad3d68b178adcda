"""A state machine's Task in flight is visible as a code workflow's step is: ``rt.describe``
(``RunInfo.running``), ``runs show`` and ``rt.history(running=True)`` of a run this runtime
runs show each Task attempt (its step id, attempt, since when) from memory, with no write."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import anyio
import pytest

from _support import until
from wayline import RunStatus, StateMachine, open_runtime
from wayline._cli._output import run_text
from wayline.history import StepStarted
from wayline.runtime import StepAttemptInfo
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio

WORK = "arn:aws:lambda:us-east-1:123456789012:function:work"
FLAKY = "arn:aws:lambda:us-east-1:123456789012:function:flaky"

gates: dict[Any, asyncio.Event] = {}
entered: list[Any] = []
failed: list[Any] = []


async def work(payload: Any) -> Any:
    entered.append(payload)
    await gates[payload].wait()
    return {"done": payload, "items": ["i1", "i2"]}


async def flaky(payload: Any) -> Any:
    if payload not in failed:
        failed.append(payload)
        raise ConnectionError("the first attempt fails")
    return await work(payload)


def _fresh(*keys: Any) -> None:
    entered.clear()
    failed.clear()
    for key in keys:
        gates[key] = asyncio.Event()


def _machine() -> StateMachine:
    item = {"StartAt": "Item", "States": {"Item": {"Type": "Task", "Resource": WORK, "End": True}}}
    return StateMachine(
        {
            "StartAt": "Prep",
            "States": {
                "Prep": {"Type": "Pass", "Next": "Work"},
                "Work": {"Type": "Task", "Resource": WORK, "InputPath": "$.key", "Next": "Fan"},
                "Fan": {"Type": "Map", "ItemsPath": "$.items", "ItemProcessor": item, "End": True},
            },
        },
        name="tasks",
        resources={WORK: work, FLAKY: flaky},
    )


def _retried() -> StateMachine:
    retry = [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 5, "MaxAttempts": 2}]
    return StateMachine(
        {"StartAt": "Call", "States": {"Call": {"Type": "Task", "Resource": FLAKY, "Retry": retry, "End": True}}},
        name="retried_task",
        resources={FLAKY: flaky},
    )


async def test_a_task_in_flight_is_shown_and_gone_once_it_ends(tmp_path: Path) -> None:
    _fresh("w", "i1", "i2")
    sm = _machine()
    clock = VirtualClock()
    async with open_runtime(str(tmp_path / "w.db"), workflows=[sm], clock=clock) as rt:
        handle = await rt.start(sm, {"key": "w", "items": ["i1", "i2"]}, run_id="r")
        await until(lambda: entered == ["w"])
        started = clock.time()
        clock.advance(4)  # four seconds into the Task
        info = await rt.describe("r")
        assert info.live and info.status is RunStatus.RUNNING
        (attempt,) = info.running
        assert attempt == StepAttemptInfo(attempt.step, -1, 1, started)
        assert attempt.step.startswith("Work#")  # the step id `step_info()` gives the resource
        shown = {line[:12].strip(): line[12:].strip() for line in run_text(info).splitlines()}
        assert shown["running"].startswith(f"step {attempt.step!r} (attempt 1), since ")
        stored = [e async for e in rt.history("r")]
        assert not any(isinstance(e, StepStarted) for e in stored)  # nothing was written for it
        glimpse = [e async for e in rt.history("r", running=True)]
        assert glimpse[: len(stored)] == stored
        assert glimpse[len(stored) :] == [StepStarted(ts=started, step=attempt.step, index=-1, attempt=1)]

        # The Map's items are Tasks of their own, shown side by side with their positions.
        gates["w"].set()
        await until(lambda: sorted(entered) == ["i1", "i2", "w"])
        running = (await rt.describe("r")).running
        # Each item's position is in its step id: "Fan/<item>/Item#<visit>".
        assert sorted(r.step.split("#")[0] for r in running) == ["Fan/0/Item", "Fan/1/Item"]
        gates["i1"].set()
        with anyio.fail_after(5):
            while len((await rt.describe("r")).running) != 1:  # noqa: ASYNC110 - nothing tells of it
                await asyncio.sleep(0)
        gates["i2"].set()
        assert await handle.result() == [{"done": "i1", "items": ["i1", "i2"]}, {"done": "i2", "items": ["i1", "i2"]}]
        assert (await rt.describe("r")).running == ()


async def test_a_retried_task_shows_its_attempt_number(tmp_path: Path) -> None:
    _fresh("f")
    sm = _retried()
    clock = VirtualClock()
    async with open_runtime(str(tmp_path / "w.db"), workflows=[sm], clock=clock) as rt:
        handle = await rt.start(sm, "f", run_id="r")
        await until(lambda: failed == ["f"])
        await clock.sleep(6)  # past the retry's interval
        await until(lambda: entered == ["f"])
        (attempt,) = (await rt.describe("r")).running
        assert (attempt.step.split("#")[0], attempt.attempt) == ("Call", 2)
        gates["f"].set()
        assert (await handle.result())["done"] == "f"
