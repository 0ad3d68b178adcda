"""`runs show` and `runs list` say what a run waits for and until when, in words, and count a
state machine's steps (the states it entered)."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import pytest

from wayline import RetryPolicy, RunContext, StateMachine, activity, open_runtime, workflow
from wayline.testing import VirtualClock

from .conftest import Cli, settle

ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


@activity(name="charge", retry=RetryPolicy(max_attempts=3, interval=1800))
async def charge(amount: float) -> None:
    raise ConnectionError("gateway down")


@activity(name="ask_manager")
async def ask_manager(token: str) -> None:
    pass


@workflow(name="sleepy")
async def sleepy(ctx: RunContext) -> None:
    await ctx.sleep(3600)


@workflow(name="retrying")
async def retrying(ctx: RunContext) -> None:
    await ctx.run(charge, 5.0)


@workflow(name="asking")
async def asking(ctx: RunContext) -> Any:
    return await ctx.wait_signal("verdict", timeout=5400)


@workflow(name="approving")
async def approving(ctx: RunContext) -> Any:
    return await ctx.wait_for_callback(ask_manager, timeout=7200, heartbeat_timeout=600)


PAUSE = {
    "StartAt": "Price",
    "States": {
        "Price": {"Type": "Pass", "Next": "Check"},
        "Check": {"Type": "Pass", "Next": "Pause"},
        "Pause": {"Type": "Wait", "Seconds": 9000, "Next": "Done"},
        "Done": {"Type": "Succeed"},
    },
}
QUICK = {
    "StartAt": "A",
    "States": {"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "Next": "C"}, "C": {"Type": "Succeed"}},
}


@pytest.fixture
def waiting(tmp_path: Path) -> Cli:
    db = str(tmp_path / "waits.db")
    pause, quick = StateMachine(PAUSE, name="pause"), StateMachine(QUICK, name="quick")

    async def populate() -> None:
        clock = VirtualClock(start=time.time())
        async with open_runtime(db, workflows=[sleepy, retrying, asking, approving, pause, quick], clock=clock) as rt:
            await (await rt.start(quick, {}, run_id="quick")).result()
            for wf, run_id in ((sleepy, "sleepy"), (retrying, "retrying"), (asking, "asking")):
                await rt.start(wf, run_id=run_id)  # type: ignore[call-overload]
            await rt.start(approving, run_id="approving")
            await rt.start(pause, {}, run_id="pause")
            await settle(clock)

    asyncio.run(populate())
    return Cli(db, tmp_path)


def _field(out: str, name: str) -> str:
    return {line[:12].strip(): line[12:].strip() for line in out.splitlines()}[name]


@pytest.mark.parametrize(
    ("run_id", "pattern"),
    [
        ("sleepy", rf"^a timer, due {ISO} \(in [^)]+\)$"),
        ("retrying", rf"^the retry of step 'charge', due {ISO} \(in [^)]+\)$"),
        ("asking", rf"^signal 'verdict', times out at {ISO} \(in [^)]+\)$"),
        (
            "approving",
            rf"^a callback to 'ask_manager', times out at {ISO} \(in [^)]+\), "
            rf"next heartbeat due by {ISO} \(in [^)]+\)$",
        ),
        ("pause", rf"^Wait state 'Pause', until {ISO} \(in [^)]+\)$"),
    ],
)
def test_show_says_what_a_run_waits_for_and_until_when(waiting: Cli, run_id: str, pattern: str) -> None:
    res = waiting("runs", "show", run_id)
    assert res.code == 0, res.err
    assert re.match(pattern, _field(res.out, "waiting for")), res.out
    (wait,) = waiting("runs", "show", run_id, "--json").json()["waiting_for"]
    # The same wait for machines: its deadline as a field, and the text (read a moment later,
    # so "in 59m 59s" may have become "in 59m 58s").
    assert re.fullmatch(ISO, wait["until"]) and wait["until"] in _field(res.out, "waiting for")
    assert wait["text"].split(" (in ")[0] == _field(res.out, "waiting for").split(" (in ")[0]


def test_list_counts_the_states_a_state_machine_entered(waiting: Cli) -> None:
    rows = {r["run_id"]: r for r in waiting("runs", "list", "--json").json()}
    assert rows["quick"]["steps"] == 3 and rows["pause"]["steps"] == 3
    assert rows["sleepy"]["steps"] == 0
    table = waiting("runs", "list").out.splitlines()
    (quick,) = [line for line in table if line.startswith("quick ")]
    assert quick.split()[6] == "3"  # the STEPS column (after OWNER, "-" for a finished run)
    (pause,) = [line for line in table if line.startswith("pause ")]
    assert "waiting for Wait state 'Pause', until" in pause
    shown = waiting("runs", "show", "quick").out
    assert _field(shown, "steps") == "3 (states entered)"
    assert _field(shown, "workflow") == "quick (version 1, a state machine)"
