"""The demo a newcomer runs first: a worker killed with SIGKILL mid-run, then resumed."""

from __future__ import annotations

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


@pytest.mark.timeout(120)
def test_demo_without_a_kill_runs_once(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "wayline.demo", "--no-kill", "--db", str(tmp_path / "demo.db")],
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "SIGKILL" not in proc.stdout.replace("--no-kill", "")
    assert "SUCCEEDED" in proc.stdout
