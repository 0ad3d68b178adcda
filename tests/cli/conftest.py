"""A real SQLite database with runs in each state the CLI reports on, and a way to run the
installed ``wayline`` executable against it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from wayline import RunContext, RunFailed, RunStatus, activity, open_runtime, workflow
from wayline.testing import VirtualClock

WAYLINE = Path(sys.executable).with_name("wayline")


@activity(name="charge")
async def charge(amount: float) -> dict[str, Any]:
    return {"charged": amount}


@activity(name="decline")
async def decline(amount: float) -> None:
    raise ValueError(f"card declined for {amount}")


@workflow(name="approval", version="2")
async def approval(ctx: RunContext, doc: str) -> str:
    ctx.vars["doc"] = doc
    verdict = await ctx.wait_signal("verdict")
    return f"{doc}: {verdict}"


@workflow(name="order")
async def order(ctx: RunContext, amount: float) -> dict[str, Any]:
    return await ctx.run(charge, amount)  # type: ignore[no-any-return]


@workflow(name="declined")
async def declined(ctx: RunContext, amount: float) -> None:
    await ctx.run(decline, amount)


WORKFLOWS = [approval, order, declined]


async def settle(clock: VirtualClock) -> None:
    """Return once every run of the runtime on ``clock`` is parked and its checkpoint committed.

    A `VirtualClock` only moves on when no task can run and the store has no write in
    flight, so a short virtual sleep ends exactly then: a wait on a condition, not a poll.
    """
    await clock.sleep(0.001)


async def _populate(path: str) -> None:
    # Virtual time starting now: `--since 1h` finds these runs, and each starts 1 s after the
    # one before, so `runs list` has an order to show.
    clock = VirtualClock(start=time.time() - 10)
    async with open_runtime(path, workflows=WORKFLOWS, clock=clock) as rt:
        await (await rt.start(order, 12.5, run_id="paid")).result()
        clock.advance(1)
        with pytest.raises(RunFailed):
            await (await rt.start(declined, 99.0, run_id="declined")).result()
        clock.advance(1)
        await rt.start(approval, "contract-7", run_id="waiting")
        await settle(clock)
        assert (await rt.describe("waiting")).status is RunStatus.WAITING


@dataclass
class Cli:
    """Runs ``wayline ARGS --db <the test database>`` and returns the finished process."""

    db: str
    cwd: Path

    def argv(self, *args: str, db: bool = True) -> list[str]:
        return [str(WAYLINE), *args] + (["--db", self.db] if db else [])

    def __call__(self, *args: str, db: bool = True, stdin: str | None = None, **env: str) -> Result:
        argv = self.argv(*args, db=db)
        environ = {**os.environ, **env}
        proc = subprocess.run(argv, capture_output=True, text=True, cwd=self.cwd, env=environ, input=stdin, timeout=60)
        return Result(proc.returncode, proc.stdout, proc.stderr)


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = str(tmp_path / "runs.db")
    asyncio.run(_populate(path))
    return path


@pytest.fixture
def cli(db: str, tmp_path: Path) -> Cli:
    return Cli(db, tmp_path)
