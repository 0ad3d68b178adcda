"""A real SQLite database with runs in each state the CLI reports on, and a way to run the
installed ``wayline`` executable against it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from wayline import RunContext, RunStatus, activity, open_runtime, workflow

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


async def wait_status(rt: Any, run_id: str, status: RunStatus) -> None:
    while (await rt.describe(run_id)).status is not status:  # noqa: ASYNC110 - polls the store
        await asyncio.sleep(0.005)


async def _populate(path: str) -> None:
    async with open_runtime(path, workflows=WORKFLOWS) as rt:
        await rt.start(order, 12.5, run_id="paid")
        await rt.start(declined, 99.0, run_id="declined")
        await rt.start(approval, "contract-7", run_id="waiting")
        for run_id, status in (("paid", RunStatus.SUCCEEDED), ("declined", RunStatus.FAILED)):
            await wait_status(rt, run_id, status)
        await wait_status(rt, "waiting", RunStatus.WAITING)


@dataclass
class Cli:
    """Runs ``wayline ARGS --db <the test database>`` and returns the finished process."""

    db: str
    cwd: Path

    def __call__(self, *args: str, db: bool = True, stdin: str | None = None, **env: str) -> Result:
        argv = [str(WAYLINE), *args] + (["--db", self.db] if db else [])
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
