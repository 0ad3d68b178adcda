"""A step attempt in flight is visible: ``rt.describe`` and ``rt.history`` of a run this
runtime runs show it (name, attempt, since when) from the actor's memory; the CLI, another
process, says that what it shows is the run's last checkpoint."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from _support import until
from wayline import RetryPolicy, RunContext, RunStatus, activity, open_runtime, workflow
from wayline.history import StepStarted, StepSucceeded
from wayline.runtime import StepAttemptInfo
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio

WAYLINE = Path(sys.executable).with_name("wayline")

gates: dict[str, asyncio.Event] = {}
entered: dict[str, int] = {}


async def _held(key: str) -> str:
    entered[key] = entered.get(key, 0) + 1
    await gates[key].wait()
    return key


@activity(name="quick")
async def quick() -> str:
    return "q"


@activity(name="slow")
async def slow(key: str) -> str:
    return await _held(key)


@activity(name="flaky", retry=RetryPolicy(max_attempts=3, interval=5.0))
async def flaky(key: str) -> str:
    if entered.get(key, 0) == 0:
        entered[key] = 1
        raise ConnectionError("first attempt fails")
    return await _held(key)


@workflow(name="one_slow")
async def one_slow(ctx: RunContext, key: str) -> str:
    await ctx.run(quick)
    return await ctx.run(slow, key)


@workflow(name="retried")
async def retried(ctx: RunContext, key: str) -> str:
    return await ctx.run(flaky, key)


@workflow(name="two_at_once")
async def two_at_once(ctx: RunContext, keys: list[str]) -> list[Any]:
    return await ctx.gather(*(ctx.run(slow, k) for k in keys))


def _fresh(*keys: str) -> None:
    for key in keys:
        gates[key] = asyncio.Event()
        entered.pop(key, None)


async def test_describe_and_history_show_the_step_in_flight(db: str) -> None:
    _fresh("a")
    clock = VirtualClock()
    async with open_runtime(db, workflows=[one_slow], clock=clock) as rt:
        handle = await rt.start(one_slow, "a", run_id="r")
        await until(lambda: entered.get("a") == 1)
        started = clock.time()
        clock.advance(4)  # four seconds into the activity
        info = await rt.describe("r")
        assert info.live and info.status is RunStatus.RUNNING
        assert info.running == (StepAttemptInfo("slow", 1, 1, started),)
        assert info.steps == 1  # the quick step is stored; the slow one is not, yet
        assert [type(e).__name__ for e in [e async for e in rt.history("r")]][-1] == "StepSucceeded"  # stored only
        events = [e async for e in rt.history("r", running=True)]
        assert [type(e).__name__ for e in events] == [
            "RunStarted",
            "StepStarted",
            "StepSucceeded",
            "StepStarted",
        ]
        assert events[-1] == StepStarted(ts=started, step="slow", index=1, attempt=1)
        gates["a"].set()
        assert await handle.result() == "a"
        # Once it ended, the stored history has the same StepStarted, then its outcome.
        stored = [e async for e in rt.history("r")]
        assert stored[3] == events[-1] and isinstance(stored[4], StepSucceeded)
        assert (await rt.describe("r")).running == ()


async def test_a_retry_shows_its_attempt_number(db: str) -> None:
    _fresh("b")
    clock = VirtualClock()
    async with open_runtime(db, workflows=[retried], clock=clock) as rt:
        handle = await rt.start(retried, "b", run_id="r")
        await clock.sleep(6)  # past the backoff after the first attempt failed
        await until(lambda: entered.get("b") == 2)  # the second attempt holds
        (attempt,) = (await rt.describe("r")).running
        assert (attempt.step, attempt.attempt) == ("flaky", 2)
        gates["b"].set()
        assert await handle.result() == "b"


async def test_steps_of_a_gather_in_flight_are_all_shown(db: str) -> None:
    _fresh("c1", "c2")
    async with open_runtime(db, workflows=[two_at_once], clock=VirtualClock()) as rt:
        handle = await rt.start(two_at_once, ["c1", "c2"], run_id="g")
        await until(lambda: entered.get("c1") == 1 and entered.get("c2") == 1)
        running = (await rt.describe("g")).running
        assert [(r.step, r.index, r.attempt) for r in running] == [("slow", 0, 1), ("slow", 1, 1)]
        for key in ("c1", "c2"):
            gates[key].set()
        assert await handle.result() == ["c1", "c2"]


def _cli(db: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(WAYLINE), *args, "--db", db], capture_output=True, text=True, timeout=60)


async def test_the_cli_in_another_process_says_it_shows_the_last_checkpoint(tmp_path: Path) -> None:
    _fresh("d")
    db = str(tmp_path / "w.db")
    async with open_runtime(db, workflows=[one_slow]) as rt:
        handle = await rt.start(one_slow, "d", run_id="r")
        await until(lambda: entered.get("d") == 1)
        shown, history, as_json = await asyncio.gather(
            asyncio.to_thread(_cli, db, "runs", "show", "r"),
            asyncio.to_thread(_cli, db, "runs", "history", "r"),
            asyncio.to_thread(_cli, db, "runs", "show", "r", "--json"),
        )
        gates["d"].set()
        await handle.result()
    assert shown.returncode == 0, shown.stderr
    fields = {line[:12].strip(): line[12:].strip() for line in shown.stdout.splitlines()}
    assert fields["status"] == "RUNNING" and fields["steps"] == "1"
    assert fields["as of"].startswith("its last checkpoint, ") and "step in flight" in fields["as of"]
    assert history.returncode == 0, history.stderr
    assert [line.split()[1] for line in history.stdout.splitlines()] == ["RunStarted", "StepStarted", "StepSucceeded"]
    assert "history as of the run's last checkpoint" in history.stderr
    doc = json.loads(as_json.stdout)
    assert (doc["live"], doc["running"]) == (False, [])
