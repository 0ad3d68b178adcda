"""kill -9 of a real process while updates are in flight: each update is taken once and
answered once, and a caller that retries with the same update id gets the same answer."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from wayline import RunNotFoundError, open_runtime
from wayline.errors import UpdateTimeoutError
from wayline.history import UpdateAccepted, UpdateAnswered

pytestmark = pytest.mark.anyio

WORKER = Path(__file__).with_name("update_worker.py")
ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 8


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # real processes and real time: once is enough


def spawn(db: Path, side: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(db), str(side)], stdout=subprocess.PIPE, text=True, env=env
    )


def kill(worker: subprocess.Popen[str]) -> None:
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(10)
    assert worker.stdout is not None
    worker.stdout.close()


@pytest.mark.timeout(180)
@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_updates_racing_kill_9_are_answered_once(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    db, side = tmp_path / "u.db", tmp_path / "side.txt"
    kills = sorted(rng.sample(range(ROUNDS), 3))
    answers: list[int] = []
    worker = spawn(db, side)
    try:
        async with open_runtime(db, workflows=[], worker=False, inbox_poll_interval=None) as client:
            for i in range(ROUNDS):
                update_id = f"add-{i}"
                call = asyncio.ensure_future(client.update("cart", "add", f"sku{i}", timeout=3, update_id=update_id))
                if i in kills:
                    # Kill the worker somewhere between taking the update and answering it.
                    await asyncio.sleep(rng.uniform(0.0, 0.05))
                    kill(worker)
                    worker = spawn(db, side)
                while True:
                    try:
                        answers.append(await call)
                        break
                    except (UpdateTimeoutError, RunNotFoundError):
                        # The caller retries with the same id: the same answer, never a second take.
                        call = asyncio.ensure_future(
                            client.update("cart", "add", f"sku{i}", timeout=3, update_id=update_id)
                        )
            retried = await client.update("cart", "add", "sku0", update_id="add-0")
            events = [e async for e in client.history("cart")]
        out, _ = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate(timeout=10)
    assert answers == list(range(1, ROUNDS + 1))  # each answered once, in order
    assert retried == 1  # the answer recorded for add-0
    assert json.loads(out.strip().splitlines()[-1]) == [f"sku{i}" for i in range(ROUNDS)]
    assert [e.update_id for e in events if isinstance(e, UpdateAccepted)] == [f"add-{i}" for i in range(ROUNDS)]
    assert [e.result for e in events if isinstance(e, UpdateAnswered)] == list(range(1, ROUNDS + 1))
    recorded = side.read_text().split()
    # The step of an update in flight at a kill may run again (at least once); never a new item.
    assert sorted(set(recorded)) == sorted(f"sku{i}" for i in range(ROUNDS))
    assert len(recorded) - len(set(recorded)) <= len(kills)
