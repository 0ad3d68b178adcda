"""The `wayline` command with ``--db postgresql://...``."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wayline import RunContext, open_runtime, workflow

ROOT = Path(__file__).resolve().parents[2]


@workflow(name="waiter")
async def waiter(ctx: RunContext) -> str:
    got: str = await ctx.wait_signal("go")
    return got


def wayline(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, "-m", "wayline.cli", *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


@pytest.mark.anyio
async def test_cli_reads_and_signals_runs_on_a_postgres_url(pg_url: str) -> None:
    async with open_runtime(pg_url, workflows=[waiter]) as rt:
        handle = await rt.start(waiter, run_id="w")
        listed = await asyncio.to_thread(wayline, "runs", "list", "--db", pg_url, "--json")
        assert listed.returncode == 0, listed.stderr
        assert [r["run_id"] for r in json.loads(listed.stdout)] == ["w"]
        sent = await asyncio.to_thread(wayline, "signal", "w", "go", '"from the shell"', "--db", pg_url)
        assert sent.returncode == 0, sent.stderr
        assert await asyncio.wait_for(handle.result(), timeout=30) == "from the shell"


def test_cli_names_a_missing_postgres_database_without_creating_it(pg_url: str) -> None:
    missing = pg_url.rsplit("/", 1)[0] + "/wayline_cli_missing"
    done = wayline("runs", "list", "--db", missing)
    assert done.returncode == 1
    assert "does not exist" in done.stderr and "createdb wayline_cli_missing" in done.stderr


def test_the_readme_example_runs(pg_url: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "postgres_quickstart.py"), pg_url],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.strip().splitlines()
    assert first == "{'reserved': 'reserved LAMP-01', 'approved': True}"
    assert second.startswith("worker ") and "(pid " in second
