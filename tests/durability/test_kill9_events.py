"""kill -9 of a real worker with events in flight and runs queued by a concurrency limit:
every accepted event starts its run once, no queued run is lost, and the limit holds across
the restart (the slots of runs that were executing are held again)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from wayline import Event, RunStatus, open_runtime
from wayline.persistence import Custom

pytestmark = pytest.mark.anyio

WORKER = Path(__file__).with_name("events_worker.py")
ROOT = Path(__file__).resolve().parents[2]
EVENTS = 60


def spawn(db: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, str(WORKER), str(db)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def spans(side: Path, killed_at: float) -> dict[str, list[tuple[float, float]]]:
    """Per key, the (start, end) of each attempt of a run's step; an attempt the kill cut
    short ends at the kill."""
    open_: dict[tuple[str, str], float] = {}
    out: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for line in side.read_text().splitlines():
        what, run_id, pid, at = line.split()
        if what == "start":
            open_[(run_id, pid)] = float(at)
        else:
            out[KEYS[run_id]].append((open_.pop((run_id, pid)), float(at)))
    for (run_id, _), start in open_.items():
        out[KEYS[run_id]].append((start, killed_at))
    return out


KEYS: dict[str, str] = {}


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    points = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    level = best = 0
    for _, step in points:
        level += step
        best = max(best, level)
    return best


@pytest.mark.timeout(180)
@pytest.mark.parametrize("kill_after", [10, 35])
async def test_events_and_queued_runs_survive_kill_9(tmp_path: Path, kill_after: int) -> None:
    db, side = tmp_path / "e.db", tmp_path / "side.txt"
    worker = spawn(db)
    killed_at = 0.0
    try:
        async with open_runtime(db, worker=False, inbox_poll_interval=None) as client:
            seqs = []
            for i in range(EVENTS):
                data = {"k": f"k{i % 3}", "n": i, "side": str(side)}
                sent = await client.send_events([Event(name="job", data=data, id=f"job-{i}")])
                assert not sent[0].duplicate
                seqs.append(sent[0].seq)
                KEYS[f"job@event:{sent[0].seq}"] = data["k"]
                if i == kill_after:
                    killed_at = time.time()
                    os.kill(worker.pid, signal.SIGKILL)
                    worker.wait(10)
                    assert worker.stdout is not None
                    worker.stdout.close()
                    # A retry after the crash is a duplicate: it starts nothing.
                    again = await client.send_events([Event(name="job", data=data, id=f"job-{i}")])
                    assert again[0].duplicate
                    worker = spawn(db)
            deadline = time.monotonic() + 120
            while True:
                runs = await client.list_runs(workflow="job")
                done = [r for r in runs if r.status is RunStatus.SUCCEEDED]
                if len(done) == EVENTS:
                    break
                assert time.monotonic() < deadline, f"{len(done)} of {EVENTS} runs ended"
                await asyncio.sleep(0.05)
            assert sorted(r.run_id for r in runs) == sorted(f"job@event:{s}" for s in seqs)
            assert sorted(r.output for r in runs) == list(range(EVENTS))
            assert await client.list_runs(status=RunStatus.QUEUED) == []
            while await client.store.flow.slots():  # type: ignore[attr-defined]
                # the last slot is given back just after its run's end is committed
                assert time.monotonic() < deadline, "a slot is still held"
                await asyncio.sleep(0.05)
            # The limit was at work: runs waited QUEUED before they started.
            queued = 0
            for r in runs:
                history = [e async for e in client.history(r.run_id)]
                queued += any(isinstance(e, Custom) and e.name == "RunDequeued" for e in history)
            assert queued >= EVENTS // 2
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate(timeout=10)
    per_key = spans(side, killed_at)
    at_once = {k: most_at_once(v) for k, v in per_key.items()}
    assert sorted(at_once) == ["k0", "k1", "k2"] and max(at_once.values()) <= 2, at_once  # never 3
    ran = {line.split()[1] for line in side.read_text().splitlines()}
    assert len(ran) == EVENTS  # every run's step ran (a step cut by the kill ran again)
