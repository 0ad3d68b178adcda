"""A full disk under a running runtime, on a small real tmpfs: runs pause, nothing fails,
the runtime says it is degraded and why, and every run ends once space is freed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from durability._procs import Worker, fill, mount_tmpfs, unmount

RUNS = 20


@pytest.fixture
def small_disk(tmp_path: Path) -> object:
    disk = tmp_path / "disk"
    mount_tmpfs(disk, "8m")
    try:
        yield disk
    finally:
        unmount(disk)


def wayline_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wayline.cli", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_runs_pause_on_a_full_disk_and_finish_once_space_is_freed(small_disk: Path) -> None:
    db = small_disk / "wayline.db"
    worker = Worker("store_fault_worker.py", [str(db), "outage", str(RUNS)])
    filler: Path | None = None
    try:
        worker.expect("READY")  # every run has checkpointed its first step and is in its second
        filler = fill(small_disk)
        assert os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize < 4096
        worker.send("go")  # the second steps end now: their checkpoints find no space

        # The store says it cannot write, and why; runs are not failed meanwhile.
        worker.expect("DEGRADED", timeout=20)
        described = json.loads(worker.expect("DESCRIBE"))
        assert described["status"] == "RUNNING", described
        store = described["store"]
        assert store["status"] == "degraded" and store["cause"] == "disk_full", store
        assert "full" in store["reason"] and store["since"] is not None and store["held"] >= 1, store
        metric = json.loads(worker.expect("METRIC"))
        assert metric == [
            {"value": 1, "attributes": {"wayline.store.status": "degraded", "wayline.store.cause": "disk_full"}}
        ]
        # New work is refused at once, saying that nothing was stored.
        for what in ("start", "signal"):
            refused = json.loads(worker.expect(f"REFUSED {what}"))
            assert refused["type"] == "StoreUnavailableError", refused
            assert "full" in refused["message"] and "Nothing was stored" in refused["message"], refused
        # Another process sees it too: `wayline runs show` says why the run is stuck.
        shown = wayline_cli("--db", str(db), "runs", "show", "r0")
        assert shown.returncode == 0, shown.stderr
        assert "store" in shown.stdout and "DEGRADED" in shown.stdout and "no runtime can checkpoint" in shown.stdout

        filler.unlink()  # space is freed: the held checkpoints go through at the next retry
        filler = None
        worker.expect("RECOVERED", timeout=20)
        outcome = json.loads(worker.expect("RESULT", timeout=60))
        assert worker.expect("CLOSE") == "ok"
    finally:
        if filler is not None:
            filler.unlink()
        worker.close()
    assert outcome["results"] == outcome["expected"]  # what an uninterrupted run returns
    assert outcome["statuses"] == ["SUCCEEDED"] * RUNS
    assert outcome["crashes"] == [] and outcome["resumed"] == []  # no restart, no crash budget spent
    assert outcome["health"]["status"] == "ok", outcome["health"]
