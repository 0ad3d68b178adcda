"""kill -9 of a real process waiting on signals: no accepted signal is lost or applied twice."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from wayline import RunNotFoundError, open_runtime

pytestmark = pytest.mark.anyio

WORKER = Path(__file__).with_name("signal_worker.py")
ROOT = Path(__file__).resolve().parents[2]


def lines(side: Path) -> list[str]:
    return side.read_text().split() if side.exists() else []


async def wait_for(predicate: Callable[[], bool], what: str, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def spawn(db: Path, side: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(db), str(side)], stdout=subprocess.PIPE, text=True, env=env
    )


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kill_after", [2, 5, 8])
async def test_signals_survive_kill_9_of_the_worker(tmp_path: Path, kill_after: int) -> None:
    db, side = tmp_path / "s.db", tmp_path / "side.txt"
    worker = spawn(db, side)
    try:
        async with open_runtime(db, workflows=[], worker=False, inbox_poll_interval=None) as client:
            await wait_for(db.exists, "the worker's database")
            for i in range(10):
                while True:  # the run exists once the worker has started it
                    try:
                        await client.signal("p", "ping", 100 + i)
                        break
                    except RunNotFoundError:
                        await asyncio.sleep(0.01)
                if i == kill_after:
                    # the signal is committed; kill the worker wherever it is in consuming it
                    os.kill(worker.pid, signal.SIGKILL)
                    worker.wait(10)
                    assert worker.stdout is not None
                    worker.stdout.close()
                    worker = spawn(db, side)
                else:
                    await wait_for(lambda i=i: len(set(lines(side))) > i, f"round {i}")
        out, _ = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate(timeout=10)
    assert worker.returncode == 0
    assert json.loads(out.strip().splitlines()[-1]) == [100 + i for i in range(10)]
    recorded = lines(side)
    # each round took its own signal, in order; a round in flight at the kill may repeat
    assert sorted(set(recorded)) == sorted(f"{i}:{100 + i}" for i in range(10))
    assert len(recorded) - len(set(recorded)) <= 1
