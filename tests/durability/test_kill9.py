"""kill -9 of a real process mid-run; a new process resumes the run on the same file."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from _support import kill_9_when

WORKER = Path(__file__).with_name("worker.py")
EXPECTED = {"squares": [i * i for i in range(20)], "sum": sum(i * i for i in range(20))}


def lines(side: Path) -> list[int]:
    if not side.exists():
        return []
    return [int(x) for x in side.read_text(encoding="utf-8").split()]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_kill_9_mid_run_then_resume_in_a_new_process(tmp_path: Path, loop: str) -> None:
    db, side = tmp_path / "k.db", tmp_path / "side.txt"
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), str(db), str(side), "start", loop],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    kill_9_when(proc, lambda: len(lines(side)) >= 5)
    before = lines(side)
    assert 5 <= len(before) < 20, "the kill must land mid-run"

    done = subprocess.run(
        [sys.executable, str(WORKER), str(db), str(side), "resume", loop],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == EXPECTED

    after = lines(side)
    counts = Counter(after)
    assert sorted(counts) == list(range(20))  # every step ran
    twice = [i for i, c in counts.items() if c > 1]
    assert all(counts[i] <= 2 for i in counts)
    assert len(twice) <= 1, f"only the step in flight at the kill may run again: {twice}"
    # a step is re-run only if it was the last one started before the kill
    assert all(i == before[-1] for i in twice)
    # the steps finished before the kill (all but maybe the last line) never run again
    assert after[: len(before)] == before


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_kill_9_during_group_commits_of_many_runs(tmp_path: Path, loop: str) -> None:
    db, side = tmp_path / "m.db", tmp_path / "side.txt"
    many = 40

    def tags() -> list[str]:
        return side.read_text(encoding="utf-8").split() if side.exists() else []

    proc = subprocess.Popen(
        [sys.executable, str(WORKER), str(db), str(side), "start-many", loop],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    # Every run started (it has a step done) and, overall, a few steps in. Runs are started
    # one after another, so under load the first ones can be far ahead of the last.
    kill_9_when(proc, lambda: len({t.split(":")[0] for t in tags()}) == many and len(tags()) >= many * 4)
    before = Counter(tags())
    assert len(before) < many * 10, "the kill must land mid-run"

    done = subprocess.run(
        [sys.executable, str(WORKER), str(db), str(side), "resume-many", loop],
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
        # at most the one step each run had in flight at the kill runs again
        assert len(repeated) <= 1 and all(after[f"{r}:{i}"] == 2 for i in repeated), (r, repeated)
