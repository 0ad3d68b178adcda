"""The command line shows queued runs: `runs list --status QUEUED`, and `runs show` says why
one waits."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from wayline import open_runtime
from wayline.testing import VirtualClock

from .test_concurrency import one_at_a_time
from .test_max_runs import job

ROOT = Path(__file__).resolve().parents[2]


async def _queue_two(db: str) -> None:
    async with open_runtime(db, workflows=[one_at_a_time], clock=VirtualClock()) as rt:
        for run_id in ("a", "b"):
            await rt.start(one_at_a_time, {"name": run_id, "p": 0}, run_id=run_id)


def test_the_cli_lists_queued_runs_and_says_why_one_waits(tmp_path: Path) -> None:
    db = str(tmp_path / "q.db")
    asyncio.run(_queue_two(db))
    cli = [str(Path(sys.executable).with_name("wayline")), "--db", db]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    listed = subprocess.run(
        [*cli, "--json", "runs", "list", "--status", "QUEUED"], capture_output=True, text=True, env=env, check=True
    )
    assert [r["run_id"] for r in json.loads(listed.stdout)] == ["b"]
    shown = subprocess.run([*cli, "runs", "show", "b"], capture_output=True, text=True, env=env, check=True)
    assert "waiting for  a slot: concurrency limit 1 reached (1 running, 0 queued ahead, priority 0)" in shown.stdout


async def _throttle_and_debounce(db: str) -> None:
    from .test_debounce import reindex
    from .test_throttle import paced

    async with open_runtime(db, workflows=[paced, reindex], clock=VirtualClock()) as rt:
        for run_id in ("t1", "t2", "t3"):
            await rt.start(paced, 1, run_id=run_id)
        await rt.start(reindex, 1, run_id="d1")
        await rt.start(reindex, 2, run_id="d2")  # joins d1's debounce


def test_the_cli_says_why_a_throttled_or_debounced_run_waits(tmp_path: Path) -> None:
    db = str(tmp_path / "p.db")
    asyncio.run(_throttle_and_debounce(db))
    cli = [str(Path(sys.executable).with_name("wayline")), "--db", db]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    listed = subprocess.run(
        [*cli, "--json", "runs", "list", "--status", "queued"], capture_output=True, text=True, env=env, check=True
    )
    assert sorted(r["run_id"] for r in json.loads(listed.stdout)) == ["d1", "t2", "t3"]
    shown = subprocess.run([*cli, "runs", "show", "t3"], capture_output=True, text=True, env=env, check=True)
    # (Its next start is "now" by the command line's clock, the real one, long past the test's.)
    assert "waiting for  throttled: 2 starts per 10 s; next start at " in shown.stdout
    assert "(1 queued ahead, priority 0)" in shown.stdout
    shown = subprocess.run([*cli, "runs", "show", "d1"], capture_output=True, text=True, env=env, check=True)
    assert "waiting for  debounced until 2026-01-01T00:00:10.000+00:00 (2 starts so far" in shown.stdout


async def _queue_beyond_max_runs(db: str) -> None:
    async with open_runtime(db, workflows=[job], clock=VirtualClock(), max_runs=1) as rt:
        for n in range(3):
            await rt.start(job, n, run_id=f"j{n}")


def test_the_cli_shows_runs_queued_by_max_runs(tmp_path: Path) -> None:
    db = str(tmp_path / "m.db")
    asyncio.run(_queue_beyond_max_runs(db))
    cli = [str(Path(sys.executable).with_name("wayline")), "--db", db]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    listed = subprocess.run(
        [*cli, "--json", "runs", "list", "--status", "QUEUED"], capture_output=True, text=True, env=env, check=True
    )
    assert sorted(r["run_id"] for r in json.loads(listed.stdout)) == ["j1", "j2"]
    shown = subprocess.run([*cli, "runs", "show", "j2"], capture_output=True, text=True, env=env, check=True)
    assert "waiting for  a runtime slot: max_runs=1 reached (1 running, 1 queued ahead, priority 0)" in shown.stdout
