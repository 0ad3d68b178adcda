"""kill -9 of a real process waiting on callbacks: no accepted answer is lost or applied twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from wayline import CallbackTokenError, open_runtime

from .test_kill9_signals import ROOT, wait_for

pytestmark = pytest.mark.anyio

WORKER = Path(__file__).with_name("callback_worker.py")


def tokens(path: Path) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            i, token = line.split()
            found.setdefault(int(i), []).append(token)
    return found


def spawn(db: Path, tokens_file: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(db), str(tokens_file)], stdout=subprocess.PIPE, text=True, env=env
    )


def kill(worker: subprocess.Popen[str]) -> None:
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(10)
    assert worker.stdout is not None
    worker.stdout.close()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["kill-after-answer", "answer-while-down"])
async def test_callbacks_survive_kill_9_of_the_worker(tmp_path: Path, mode: str) -> None:
    db, tokens_file = tmp_path / "cb.db", tmp_path / "tokens.txt"
    worker = spawn(db, tokens_file)
    try:
        async with open_runtime(db, workflows=[], worker=False, inbox_poll_interval=None) as client:
            for i in range(5):
                await wait_for(lambda i=i: i in tokens(tokens_file), f"the token of round {i}")
                if mode == "answer-while-down" and i in (1, 3):
                    kill(worker)  # the worker dies while the run waits; the answer comes meanwhile
                    await client.complete_callback(tokens(tokens_file)[i][0], 100 + i)
                    worker = spawn(db, tokens_file)
                    continue
                await client.complete_callback(tokens(tokens_file)[i][0], 100 + i)
                if mode == "kill-after-answer" and i in (1, 3):
                    kill(worker)  # the answer is committed; kill wherever the worker is in applying it
                    worker = spawn(db, tokens_file)
                with pytest.raises(CallbackTokenError):
                    await client.complete_callback(tokens(tokens_file)[i][0], -1)  # single use
        out, _ = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate(timeout=10)
    assert worker.returncode == 0
    assert json.loads(out.strip().splitlines()[-1]) == [100 + i for i in range(5)]
    handed_out = tokens(tokens_file)
    assert sorted(handed_out) == list(range(5))
    # A sender killed before its success was committed runs again (with a new token; the test
    # answered with the first one, which stays valid); no other round sent twice.
    assert all(len(t) <= (2 if i in (1, 3) else 1) for i, t in handed_out.items()), handed_out
