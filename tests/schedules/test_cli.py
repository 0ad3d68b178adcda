"""``wayline schedules ...`` beside a worker: the command changes the stored schedule, the worker
that owns the database acts on it at its next look."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from wayline import RunContext, open_runtime, workflow

pytestmark = pytest.mark.anyio

WAYLINE = Path(sys.executable).with_name("wayline")

started: dict[str, asyncio.Event] = {}


@workflow(name="ping")
async def ping(ctx: RunContext, label: str) -> str:
    started.setdefault(ctx.run_id, asyncio.Event()).set()
    return label


async def _cli(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [str(WAYLINE), *args, "--db", str(db)]
    return await anyio.to_thread.run_sync(lambda: subprocess.run(argv, capture_output=True, text=True, timeout=60))


async def _started(run_id: str) -> None:
    with anyio.fail_after(30):
        await started.setdefault(run_id, asyncio.Event()).wait()


async def test_schedules_commands_beside_a_worker(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    async with open_runtime(db, workflows=[ping], inbox_poll_interval=0.05) as rt:
        await rt.create_schedule("weekly", ping, "hello", cron="0 0 * * 0", tz="Europe/Paris")

        listed = await _cli(db, "schedules", "list")
        assert listed.returncode == 0, listed.stderr
        header, row = listed.stdout.splitlines()
        assert header.split()[:5] == ["SCHEDULE", "WORKFLOW", "WHEN", "OVERLAP", "STATE"]
        assert row.startswith("weekly") and "cron '0 0 * * 0' (Europe/Paris)" in row and "active" in row

        triggered = await _cli(db, "schedules", "trigger", "weekly", "--json")
        assert triggered.returncode == 0, triggered.stderr
        run_id = json.loads(triggered.stdout)["run_id"]
        await _started(run_id)  # the worker saw the trigger and started the run
        assert await rt.get_handle(run_id).result() == "hello"

        paused = await _cli(db, "schedules", "pause", "weekly", "--note", "quiet week")
        assert paused.returncode == 0 and paused.stdout.strip() == "schedule weekly paused"
        shown = await _cli(db, "schedules", "show", "weekly")
        assert "state      paused: quiet week" in shown.stdout
        assert f"last run   {run_id} SUCCEEDED" in shown.stdout
        doc = json.loads((await _cli(db, "schedules", "show", "weekly", "--json")).stdout)
        assert (doc["paused"], doc["note"], doc["next_fires"], doc["started"]) == (True, "quiet week", [], 1)

        backfilled = await _cli(
            db, "schedules", "backfill", "weekly", "--start", "2026-01-03T00:00:00Z", "--end", "2026-01-18T00:00:00Z"
        )
        assert backfilled.returncode == 0, backfilled.stderr
        for day in (4, 11, 18):  # the Sundays in the range, at midnight in Paris (23:00 UTC before)
            at = datetime(2026, 1, day - 1, 23, tzinfo=UTC)
            await _started(f"weekly@{at.isoformat().replace('+00:00', 'Z')}")

        resumed = await _cli(db, "schedules", "resume", "weekly")
        assert resumed.returncode == 0
        assert (await rt.get_schedule("weekly").describe()).paused is False

        deleted = await _cli(db, "schedules", "delete", "weekly")
        assert deleted.returncode == 0
        assert (await _cli(db, "schedules", "list")).stdout.strip() == "no schedules"

        missing = await _cli(db, "schedules", "show", "weekly")
        assert missing.returncode == 1 and "no schedule with id 'weekly'" in missing.stderr
        bad = await _cli(db, "schedules", "backfill", "x", "--start", "yesterday", "--end", "today")
        assert bad.returncode == 2 and "--start 'yesterday' is not an ISO 8601 time" in bad.stderr
