"""kill -9 of a real process with runs held by a throttle and a debounce: a new process on
the same file starts every one of them, the pace still holds, and the burst is one run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from _support import kill_9_when

WORKER = Path(__file__).with_name("pacing_worker.py")


def starts(side: Path) -> list[tuple[str, float]]:
    if not side.exists():
        return []
    out = []
    for line in side.read_text(encoding="utf-8").splitlines():
        run_id, at = line.split()
        out.append((run_id, float(at)))
    return out


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_kill_9_with_throttled_and_debounced_runs_queued(tmp_path: Path, loop: str) -> None:
    db, side = tmp_path / "p.db", tmp_path / "side.txt"
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), str(db), str(side), "start", loop],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    kill_9_when(proc, lambda: len([r for r, _ in starts(side) if r.startswith("p")]) >= 3)
    before = {r for r, _ in starts(side)}
    assert "q0" not in before, "the kill must land before the debounce is due"
    assert len(before) < 12, "the kill must land with throttled runs queued"

    done = subprocess.run(
        [sys.executable, str(WORKER), str(db), str(side), "resume", loop],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    ended = json.loads(done.stdout.strip().splitlines()[-1])
    assert ended == {**{f"p{i:02}": f"p{i:02}" for i in range(12)}, "q0": 2}  # nothing lost, the last input

    first: dict[str, float] = {}
    for run_id, at in starts(side):  # a step in flight at the kill may run again: its first time counts
        first.setdefault(run_id, at)
    assert set(first) == {*(f"p{i:02}" for i in range(12)), "q0"}
    times = sorted(at for run_id, at in first.items() if run_id.startswith("p"))
    # 2 per second, spread 0.5 s apart: no 0.9 s holds three starts (0.1 s of slack for the
    # time between a start being allowed and the run marking it), across the kill too.
    assert all(sum(1 for t in times if s <= t < s + 0.9) <= 2 for s in times), times
