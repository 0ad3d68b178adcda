"""``rm wayline.db*`` under a running runtime: noticed at the next commit, no more work is
accepted, and leaving the runtime says what was lost and where it can still be read."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

from durability._procs import Worker

RUNS = 5


def test_a_database_deleted_under_a_running_runtime_stops_it_with_a_precise_error(tmp_path: Path) -> None:
    db = tmp_path / "wayline.db"
    worker = Worker("store_fault_worker.py", [str(db), "deleted", str(RUNS)])
    try:
        worker.expect("READY")  # every run is in its second step
        for name in ("wayline.db", "wayline.db-wal", "wayline.db-shm"):
            (tmp_path / name).unlink(missing_ok=True)
        worker.send("go")  # the second steps end: their checkpoints are the next commit

        health = json.loads(worker.expect("GONE", timeout=20))
        assert health["status"] == "failed" and health["cause"] == "deleted", health
        refused = {what: json.loads(worker.expect(f"REFUSED {what}")) for what in ("start", "signal")}
        for what, error in refused.items():
            assert error["type"] == "DatabaseDeletedError", (what, error)
            assert "was deleted while this runtime had it open" in error["message"], error
            assert "accepts no more work" in error["message"], error
        # No run went on past the commit that failed: steps 1 and 2 of each run, nothing more.
        assert int(worker.expect("EXECUTED")) == 2 * RUNS

        # While the process lives, the deleted file is still readable where the error says,
        # with everything that was committed to it (the log copied in).
        where = refused["start"]["copy_from"]
        assert where.startswith("/proc/"), refused["start"]
        rescued = tmp_path / "rescued.db"
        shutil.copyfile(where, rescued)
        conn = sqlite3.connect(rescued)
        try:
            assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == RUNS
        finally:
            conn.close()

        worker.send("exit")
        closed = worker.expect("CLOSE", timeout=20)
    finally:
        worker.close()
    # Leaving `open_runtime` does not pass over it in silence either.
    assert closed.startswith("DatabaseDeletedError: "), closed
    assert not db.exists()  # and nothing recreated a fresh, empty database behind the user's back
