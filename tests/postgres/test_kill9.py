"""A real worker process on PostgreSQL killed with SIGKILL mid-run, then resumed by a new one;
and the server ending every connection of a running runtime (pg_terminate_backend)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from _postgres import admin
from _support import kill_9_when
from wayline import RunContext, activity, open_runtime, workflow

WORKER = Path(__file__).parents[1] / "durability" / "worker.py"  # takes a path or a URL
EXPECTED = {"squares": [i * i for i in range(20)], "sum": sum(i * i for i in range(20))}


def lines(side: Path) -> list[int]:
    return [int(x) for x in side.read_text(encoding="utf-8").split()] if side.exists() else []


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_kill_9_mid_run_then_resume_in_a_new_process(pg_url: str, tmp_path: Path) -> None:
    side = tmp_path / "side.txt"
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), pg_url, str(side), "start", "asyncio"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    kill_9_when(proc, lambda: len(lines(side)) >= 5)
    before = lines(side)
    assert 5 <= len(before) < 20, "the kill must land mid-run"

    # The killed worker's lease has not expired, but its sessions died with it: the new
    # process takes the database over at once.
    done = subprocess.run(
        [sys.executable, str(WORKER), pg_url, str(side), "resume", "asyncio"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == EXPECTED
    counts = Counter(lines(side))
    assert sorted(counts) == list(range(20))
    twice = [i for i, c in counts.items() if c > 1]
    assert len(twice) <= 1 and all(i == before[-1] for i in twice), twice
    assert lines(side)[: len(before)] == before


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_kill_9_during_group_commits_of_many_runs(pg_url: str, tmp_path: Path) -> None:
    side = tmp_path / "side.txt"
    many = 40

    def tags() -> list[str]:
        return side.read_text(encoding="utf-8").split() if side.exists() else []

    proc = subprocess.Popen(
        [sys.executable, str(WORKER), pg_url, str(side), "start-many", "uvloop"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    kill_9_when(proc, lambda: len({t.split(":")[0] for t in tags()}) == many and len(tags()) >= many * 4)
    assert len(tags()) < many * 10, "the kill must land mid-run"
    done = subprocess.run(
        [sys.executable, str(WORKER), pg_url, str(side), "resume-many", "uvloop"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [r * 1000 + 45 for r in range(many)]
    after = Counter(tags())
    assert set(after) == {f"{r}:{i}" for r in range(many) for i in range(10)}
    for r in range(many):
        repeated = [i for i in range(10) if after[f"{r}:{i}"] > 1]
        assert len(repeated) <= 1 and all(after[f"{r}:{i}"] == 2 for i in repeated), (r, repeated)


# --- the server ends the connections mid-run ----------------------------------------------------

progress: dict[str, asyncio.Event] = {}
executed: Counter[int] = Counter()


@activity(name="tick")
async def tick(i: int) -> int:
    executed[i] += 1
    if i == 10:
        progress["ten"].set()
        await progress["resume"].wait()
    return i


@workflow(name="ticker")
async def ticker(ctx: RunContext, n: int) -> int:
    total = 0
    for i in range(n):
        total += await ctx.run(tick, i)
    return total


@pytest.mark.anyio
async def test_connections_killed_by_the_server_mid_commit_and_the_run_goes_on(pg_url: str) -> None:
    import asyncpg

    progress.update(ten=asyncio.Event(), resume=asyncio.Event())
    executed.clear()
    database = urlsplit(pg_url).path.lstrip("/")
    async with open_runtime(pg_url, workflows=[ticker]) as rt:
        handle = await rt.start(ticker, 30, run_id="t")
        await asyncio.wait_for(progress["ten"].wait(), timeout=30)
        # Hold the runs table so that step 10's checkpoint stops inside its statement...
        blocker = await asyncpg.connect(pg_url)
        lock = blocker.transaction()
        await lock.start()
        await blocker.execute("LOCK TABLE wayline.runs IN EXCLUSIVE MODE")
        progress["resume"].set()
        waiting = (
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 "
            "AND application_name LIKE 'wayline writer %' AND wait_event_type = 'Lock'"
        )
        async with asyncio.timeout(30):
            while not await blocker.fetchval(waiting, database):  # noqa: ASYNC110 - a server-side condition
                await asyncio.sleep(0.01)
        # ... and there the server ends every connection of the runtime.
        killed = await admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND application_name LIKE 'wayline %'",
            database,
        )
        assert len(killed) >= 2  # type: ignore[arg-type]  # the writer and the pool at least
        await lock.rollback()
        await blocker.close()
        assert await asyncio.wait_for(handle.result(), timeout=60) == sum(range(30))
        assert (await rt.describe("t")).status.value == "SUCCEEDED"
    # No step ran twice: the interrupted checkpoint was committed once, on a new connection,
    # and the run never crashed back to an earlier one.
    assert set(executed.values()) == {1}
