"""kill -9 of a real worker with runs under ``Concurrency(count_waiting=False)`` (some
asleep, their slots given back; some woken and queued for a slot) and with runs queued by
``max_runs``: after the restart every run ends, and neither limit was ever exceeded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("flow_waiting_worker.py")
ROOT = Path(__file__).resolve().parents[2]
RUNS = 6


def spawn(db: Path, side: Path, mode: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), str(db), str(side), mode, str(RUNS)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def intervals(side: Path, killed_at: float, whole_runs: bool) -> list[tuple[float, float]]:
    """Each step attempt's (start, end), an attempt the kill cut short ending at the kill; or,
    with ``whole_runs``, each run's first start to its last end."""
    open_: dict[tuple[str, str], float] = {}
    steps: list[tuple[str, float, float]] = []
    for line in side.read_text().splitlines():
        what, run_id, pid, at = line.split()
        if what == "start":
            open_[(run_id, pid)] = float(at)
        else:
            steps.append((run_id, open_.pop((run_id, pid)), float(at)))
    steps += [(run_id, start, killed_at) for (run_id, _), start in open_.items()]
    if not whole_runs:
        return [(s, e) for _, s, e in steps]
    runs: dict[str, tuple[float, float]] = {}
    for run_id, s, e in steps:
        first, last = runs.get(run_id, (s, e))
        runs[run_id] = (min(first, s), max(last, e))
    return list(runs.values())


def most_at_once(spans: list[tuple[float, float]]) -> int:
    points = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    level = best = 0
    for _, step in points:
        level += step
        best = max(best, level)
    return best


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("mode", "limit"), [("napper", 1), ("plain", 2)])
def test_limits_hold_across_kill_9(tmp_path: Path, mode: str, limit: int) -> None:
    db, side = tmp_path / "w.db", tmp_path / "side.txt"
    worker = spawn(db, side, mode)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not side.exists() or side.read_text().count("end ") < 5):
        time.sleep(0.01)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    killed_at = time.time()
    assert worker.stdout is not None and "done" not in worker.stdout.read()  # killed mid-way
    worker.stdout.close()
    again = spawn(db, side, mode)
    assert again.stdout is not None
    try:
        assert again.stdout.readline().strip() == "done"
        again.wait(timeout=30)
    finally:
        again.stdout.close()
    ended = {line.split()[1] for line in side.read_text().splitlines() if line.startswith("end ")}
    assert ended == {f"{mode}{n}" for n in range(RUNS)}
    # napper: one step at a time (a run's slot is given back while it sleeps); plain: at most
    # two runs from their first step to their last (max_runs=2, a waiting run counts).
    assert most_at_once(intervals(side, killed_at, whole_runs=mode == "plain")) <= limit
