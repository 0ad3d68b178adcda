"""The write-ahead log after a SIGKILL: a torn tail is normal, a damaged middle is refused
(SQLite would drop the committed transactions after it without a word), and an idle writer
keeps no committed state in the log at all."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from durability._procs import Worker
from wayline._errors import DatabaseCorruptError, WalDamagedError
from wayline.persistence import RunStatus, SQLiteStore

RUNS = 10
FRAME_HEADER, WAL_HEADER = 24, 32


def run_and_kill(db: Path, mode: str) -> dict[str, object]:
    """Run the runs to their end in a worker, then SIGKILL it: no clean close."""
    worker = Worker("store_fault_worker.py", [str(db), mode, str(RUNS)])
    try:
        outcome: dict[str, object] = json.loads(worker.expect("RESULT", timeout=60))
        worker.expect("DONE", timeout=30)
        worker.kill9()
    finally:
        worker.close()
    assert outcome["results"] == outcome["expected"]
    return outcome


def frames(wal: Path) -> int:
    page = int.from_bytes(wal.read_bytes()[8:12], "big")
    return (wal.stat().st_size - WAL_HEADER) // (FRAME_HEADER + page)


def flip_a_page_byte(wal: Path, frame: int) -> None:
    data = bytearray(wal.read_bytes())
    page = int.from_bytes(data[8:12], "big")
    data[WAL_HEADER + (frame - 1) * (FRAME_HEADER + page) + FRAME_HEADER + page // 2] ^= 0x01
    wal.write_bytes(bytes(data))


def digest(*paths: Path) -> list[str]:
    return [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]


def succeeded(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(
            conn.execute("SELECT count(*) FROM runs WHERE status = ?", (RunStatus.SUCCEEDED.value,)).fetchone()[0]
        )
    finally:
        conn.close()


async def open_store(db: Path) -> int:
    store = SQLiteStore(db)
    await store.start()
    try:
        return len(await store.list_runs(statuses=[RunStatus.SUCCEEDED]))
    finally:
        await store.close()


def test_one_flipped_byte_in_the_middle_of_the_wal_is_refused_not_silently_dropped(tmp_path: Path) -> None:
    db, wal = tmp_path / "w.db", tmp_path / "w.db-wal"
    run_and_kill(db, "wal-kept")  # no idle checkpoint: the runs' ends live only in the log
    total = frames(wal)
    assert total > 20, total
    flip_a_page_byte(wal, total // 3)

    # What SQLite alone makes of it (on a copy): committed runs gone, not a word said.
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copyfile(db, alone / "w.db")
    shutil.copyfile(wal, alone / "w.db-wal")
    assert succeeded(alone / "w.db") < RUNS

    before = digest(db, wal)
    with pytest.raises(WalDamagedError) as info:
        asyncio.run(open_store(db))
    error = info.value
    assert isinstance(error, DatabaseCorruptError)
    assert error.frame == total // 3 and error.commits >= 1, error
    message = str(error)
    assert f"damaged at frame {total // 3} of {total}" in message and "committed transaction" in message
    assert "restore both from a backup" in message and "wal_checkpoint(TRUNCATE)" in message
    assert digest(db, wal) == before  # nothing was opened for writing, nothing changed
    # Through a symlink too: SQLite reads the log named after the file the link points to.
    alias = tmp_path / "alias.db"
    alias.symlink_to(db)
    with pytest.raises(WalDamagedError):
        asyncio.run(open_store(alias))
    assert digest(db, wal) == before


def test_a_torn_tail_after_a_crash_opens_and_the_runs_finish(tmp_path: Path) -> None:
    db, wal = tmp_path / "t.db", tmp_path / "t.db-wal"
    run_and_kill(db, "wal-kept")
    size = wal.stat().st_size
    with open(wal, "r+b") as f:  # a crash in the middle of writing the last frame
        f.truncate(size - 100)
    assert asyncio.run(open_store(db)) >= RUNS - 1  # at most the last transaction is gone
    # and a runtime on it finishes every run, with the result of an uninterrupted run
    run_and_kill(db, "wal-kept")
    assert succeeded(db) == RUNS


def test_an_idle_writer_leaves_no_committed_state_only_in_the_wal(tmp_path: Path) -> None:
    db, wal = tmp_path / "i.db", tmp_path / "i.db-wal"
    worker = Worker("store_fault_worker.py", [str(db), "wal-idle", str(RUNS)])
    try:
        json.loads(worker.expect("RESULT", timeout=60))
        worker.expect("CHECKPOINTED", timeout=30)  # the writer went idle: the log was emptied
        worker.kill9()
    finally:
        worker.close()
    assert not wal.exists() or wal.stat().st_size == 0  # no frame left to damage
    assert succeeded(db) == RUNS  # all in the database file itself
