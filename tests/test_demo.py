"""The demo a newcomer runs first: a worker killed with SIGKILL mid-run, then resumed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.timeout(120)
def test_demo_resumes_the_killed_run_without_rerunning_completed_steps(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "wayline.demo", "--db", str(tmp_path / "demo.db")],
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "killed with SIGKILL" in proc.stdout
    assert "not run again" in proc.stdout
    assert "SUCCEEDED" in proc.stdout
    # The history is in time order, though the two parallel steps were checkpointed one after
    # the other (each with its StepStarted): both start, then both succeed.
    history = proc.stdout.split("history (rt.history):")[1]
    offsets = [float(m) for m in re.findall(r"^\s+\+(\d+\.\d+)s ", history, re.MULTILINE)]
    assert len(offsets) >= 13 and offsets == sorted(offsets), history
    names = re.findall(r"^\s+\+\d+\.\d+s\s+(\w+)\s+(\w*)", history, re.MULTILINE)
    parallel = [n for n in names if n[1] in ("update_inventory", "send_confirmation")]
    assert [kind for kind, _ in parallel] == ["StepStarted", "StepStarted", "StepSucceeded", "StepSucceeded"]


@pytest.mark.timeout(120)
def test_demo_without_a_kill_runs_once_and_reports_json(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "wayline.demo", "--no-kill", "--json", "--db", str(tmp_path / "demo.db")],
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(proc.stdout)  # stdout is the one JSON document; the narration is on stderr
    assert doc["ok"] is True and doc["status"] == "SUCCEEDED" and doc["killed"] is False
    assert doc["database"] == str(tmp_path / "demo.db")
    assert doc["output"]["charge_id"] == "ch_1001"
    assert {a["executions"] for a in doc["activities"].values()} == {1}
    assert len(doc["activities"]) == 5 and doc["problems"] == []
    assert "SIGKILL" not in proc.stderr.replace("--no-kill", "")
    assert "the run finished." in proc.stderr
