"""`wayline demo` is `python -m wayline.demo`, and it never loses anyone's runs: it runs on a
fresh temporary database unless told otherwise, and refuses a database with other runs."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from wayline import RunContext, open_runtime, workflow

from .conftest import WAYLINE


@workflow(name="order")  # the README's workflow name, which a user's database may well hold
async def order(ctx: RunContext, amount: float) -> float:
    return amount


def _users_database(path: Path) -> list[tuple[str, str]]:
    async def go() -> None:
        async with open_runtime(str(path), workflows=[order]) as rt:
            await (await rt.start(order, 12.5, run_id="order-1001")).result()

    asyncio.run(go())
    return _runs(path)


def _runs(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as conn:
        return sorted(conn.execute("SELECT run_id, status FROM runs").fetchall())


def _wayline(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(WAYLINE), *args], capture_output=True, text=True, timeout=100, cwd=cwd, env={**os.environ, **env}
    )


def test_demo_with_the_db_of_a_users_runs_refuses_and_keeps_them(tmp_path: Path) -> None:
    mine = tmp_path / "mine.db"
    runs = _users_database(mine)
    before = mine.read_bytes()
    proc = _wayline("--db", str(mine), "demo", cwd=tmp_path)  # the command that once deleted mine.db
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "1 of 'order'" in proc.stderr and "never writes to or deletes" in proc.stderr
    assert "run the demo without --db" in proc.stderr
    assert mine.read_bytes() == before and _runs(mine) == runs
    as_json = _wayline("demo", "--db", str(mine), "--json", cwd=tmp_path)
    assert as_json.returncode == 2
    error = json.loads(as_json.stdout)["error"]
    assert error["type"] == "DatabaseRefused" and "1 of 'order'" in error["message"]
    assert _runs(mine) == runs


@pytest.mark.timeout(120)
def test_demo_runs_on_a_fresh_temporary_database_not_wayline_db(tmp_path: Path) -> None:
    mine = tmp_path / "mine.db"
    runs = _users_database(mine)
    (tmp_path / "tmp").mkdir()
    proc = _wayline("demo", "--no-kill", cwd=tmp_path, WAYLINE_DB=str(mine), TMPDIR=str(tmp_path / "tmp"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "SUCCEEDED" in proc.stdout and "(a fresh temporary database)" in proc.stdout
    (made,) = (tmp_path / "tmp").glob("wayline-demo-*/demo.db")
    assert f"wayline --db {made} runs show order-1001" in proc.stdout  # where to look next
    assert _runs(mine) == runs  # $WAYLINE_DB is not the demo's
    assert not (tmp_path / "wayline.db").exists()


def test_demo_help_says_what_its_db_is(tmp_path: Path) -> None:
    proc = _wayline("demo", "--help", cwd=tmp_path)
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert "default: a fresh temporary one" in text
    assert "one with runs of any other workflow is refused, never changed" in text
    assert "$WAYLINE_DB is not used" in text
    assert "--lock-timeout" not in text  # the common options are described once, in `wayline --help`
    assert "the demo's --db is its own" in text
