"""kill -9 of a traced process mid-run: the run resumed in a new process continues the SAME
trace, under the root that rt.start exported, and names the step that was in flight."""

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
    # the run's root was exported at rt.start, under the caller; the killed segment never ended
    (root,) = [s for s in before if s["name"] == "run twenty"]
    assert root["parent_id"] == client["span_id"]
    assert not [s for s in before if s["name"] == "execute twenty"]
    assert {s["parent_id"] for s in steps_before} == {root["span_id"]}

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
    everything = before + after
    assert {s["trace_id"] for s in everything} == {client["trace_id"]}  # one trace
    # no span whose parent was never exported: the caller is the trace's only root
    ids = {s["span_id"] for s in everything}
    assert [s["name"] for s in everything if s["parent_id"] not in ids] == ["client request"]
    (killed,) = [s for s in after if s["name"] == "execute twenty"]  # reported by the next process
    assert killed["attributes"]["wayline.segment.end"] == "stopped" and killed["parent_id"] == root["span_id"]
    (resumed,) = [s for s in after if s["name"] == "resume twenty"]
    assert resumed["parent_id"] == root["span_id"]  # a sibling of what came before, not nested in it
    assert resumed["attributes"]["wayline.segment"] == 2
    assert resumed["attributes"]["wayline.resume_reason"] == "recovered after a process restart"
    assert resumed["attributes"]["wayline.status"] == "SUCCEEDED"
    steps_after = [s for s in after if s["name"] == "step tick"]
    assert {s["parent_id"] for s in steps_after} == {root["span_id"]}
    # the step in flight at the kill is named by the crash, and runs again as the next attempt
    (crash,) = [s for s in after if s["name"] == "interrupted"]
    (lost,) = crash["events"]
    assert lost["name"] == "wayline.lost_attempt"
    (again,) = [s for s in steps_after if s["attributes"].get("wayline.reexecution")]
    assert lost["attributes"]["wayline.step.index"] == again["attributes"]["wayline.step.index"]
    assert again["attributes"]["wayline.attempt"] == lost["attributes"]["wayline.attempt"] + 1
    # every position ran to the end exactly once, the killed one aside
    done_before = {s["attributes"]["wayline.step.index"] for s in steps_before}
    done_after = {s["attributes"]["wayline.step.index"] for s in steps_after}
    assert done_before | done_after == set(range(20))
    assert len(steps_after) == 20 - len(done_before - done_after)
