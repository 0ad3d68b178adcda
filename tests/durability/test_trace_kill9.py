"""kill -9 of a traced process mid-run: the run resumed in a new process continues the SAME
trace, its new segment a child of the first one and linked to it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from _support import kill_9_when

WORKER = Path(__file__).with_name("trace_worker.py")


def spans(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.endswith("}")]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_the_trace_survives_kill_9_and_a_new_process(tmp_path: Path, loop: str) -> None:
    db, first_file, second_file = tmp_path / "t.db", tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), str(db), str(first_file), "start", loop],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    kill_9_when(proc, lambda: len([s for s in spans(first_file) if s["name"] == "step tick"]) >= 5)
    before = spans(first_file)
    steps_before = [s for s in before if s["name"] == "step tick"]
    assert 5 <= len(steps_before) < 20, "the kill must land mid-run"
    (client,) = [s for s in before if s["name"] == "client request"]
    # the first segment never ended (killed), but its steps name it as their parent
    assert not [s for s in before if s["name"] == "run twenty"]
    (first_segment,) = {s["parent_id"] for s in steps_before}

    done = subprocess.run(
        [sys.executable, str(WORKER), str(db), str(second_file), "resume", loop],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == sum(i * i for i in range(20))

    after = spans(second_file)
    (resumed,) = [s for s in after if s["name"] == "run twenty"]
    steps_after = [s for s in after if s["name"] == "step tick"]
    assert {s["trace_id"] for s in before + after} == {client["trace_id"]}  # one trace
    assert resumed["parent_id"] == first_segment  # segment 2 hangs under segment 1...
    assert resumed["links"] == [first_segment]  # ...and links to it
    assert resumed["attributes"]["wayline.segment"] == 2
    assert resumed["attributes"]["wayline.resume_reason"] == "recovered after a process restart"
    assert resumed["attributes"]["wayline.status"] == "SUCCEEDED"
    assert {s["parent_id"] for s in steps_after} == {resumed["span_id"]}
    # the resumed segment runs the rest, at most re-running the step in flight at the kill
    assert 20 - len(steps_before) <= len(steps_after) <= 20 - len(steps_before) + 1
