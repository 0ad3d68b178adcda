"""`wayline demo` is `python -m wayline.demo`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .conftest import WAYLINE


@pytest.mark.timeout(120)
def test_demo_runs_with_its_own_database(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    proc = subprocess.run(
        [str(WAYLINE), "demo", "--no-kill", "--db", str(db)], capture_output=True, text=True, timeout=100, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "SUCCEEDED" in proc.stdout
    assert db.exists()
    assert not (tmp_path / "wayline.db").exists()  # never the default database: the demo deletes its own
