"""`check_wal` on real write-ahead logs left by a crash: what it refuses and what it lets SQLite
open. Each log is a copy of a live one (files copied while their writer has them open: what a
SIGKILL leaves), then damaged on purpose."""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from wayline._errors import WalDamagedError
from wayline.persistence._sqlite_wal import check_wal

PAGE = 4096
FRAME = 24 + PAGE


def crashed_db(tmp_path: Path, name: str, transactions: int = 30, *, restart: bool = False) -> Path:
    """A database whose WAL holds ``transactions`` committed inserts, as a crash leaves it.
    With ``restart``, the WAL was used before: a checkpoint, then a new generation of frames
    written over the start of the old, which still follows them in the file."""
    live = tmp_path / f"live-{name}"
    live.mkdir()
    conn = sqlite3.connect(live / "x.db", isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute("CREATE TABLE t (x BLOB)")
        if restart:
            for _ in range(3 * transactions):
                conn.execute("INSERT INTO t VALUES (?)", (os.urandom(2000),))
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")  # the next write starts the log over
        for _ in range(transactions):
            conn.execute("INSERT INTO t VALUES (?)", (os.urandom(2000),))
        crashed = tmp_path / name
        crashed.mkdir()
        for suffix in ("", "-wal"):
            shutil.copyfile(live / f"x.db{suffix}", crashed / f"x.db{suffix}")
    finally:
        conn.close()
    return crashed / "x.db"


def damage(db: Path, change: Callable[[bytearray], None]) -> None:
    wal = Path(f"{db}-wal")
    data = bytearray(wal.read_bytes())
    change(data)
    wal.write_bytes(bytes(data))


def page_byte(frame: int) -> int:
    return 32 + (frame - 1) * FRAME + 24 + 777


@pytest.fixture(params=["wal-index", "whole-log"])
def checked(request: pytest.FixtureRequest) -> Callable[[Path], None]:
    """`check_wal` as the store runs it: holding the write lock, SQLite's replay done; from
    where the wal-index says the replay stopped, or walking the whole log (no index)."""

    def check(db: Path) -> None:
        conn = sqlite3.connect(db, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if request.param == "wal-index":
                    header = Path(f"{db}-shm").read_bytes()[:96]
                    check_wal(str(db), lambda: header)
                else:
                    check_wal(str(db), lambda: None)
            finally:
                conn.execute("ROLLBACK")
                # as the store does on refusal: close without SQLite's checkpoint at close
                guard = sqlite3.connect(f"{db.absolute().as_uri()}?mode=ro", uri=True, isolation_level=None)
                guard.execute("BEGIN")
                guard.execute("SELECT 1 FROM sqlite_master").fetchall()
                conn.close()
                guard.close()
        finally:
            conn.close()

    return check


def rows(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT count(*) FROM t").fetchone()[0])
    finally:
        conn.close()


def flip(at: int) -> Callable[[bytearray], None]:
    def change(data: bytearray) -> None:
        data[at] ^= 0x10

    return change


def test_an_intact_log_passes(tmp_path: Path, checked: Callable[[Path], None]) -> None:
    db = crashed_db(tmp_path, "intact")
    checked(db)
    assert rows(db) == 30


@pytest.mark.parametrize(
    ("where", "at"),
    [
        ("a page", page_byte(5)),
        ("a frame's page number", 32 + 4 * FRAME + 2),
        ("a frame's stored checksum", 32 + 4 * FRAME + 18),
        ("a frame's salt", 32 + 4 * FRAME + 9),
        ("the log header's salt", 17),
        ("the log header's checksum", 26),
    ],
)
def test_damage_with_committed_transactions_after_it_is_refused(
    tmp_path: Path, checked: Callable[[Path], None], where: str, at: int
) -> None:
    db = crashed_db(tmp_path, "damaged")
    damage(db, flip(at))
    before = Path(f"{db}-wal").read_bytes()
    with pytest.raises(WalDamagedError) as info:
        checked(db)
    assert info.value.commits >= 20, (where, info.value)
    assert Path(f"{db}-wal").read_bytes() == before  # refused without touching the log


def test_a_torn_last_frame_is_normal(tmp_path: Path, checked: Callable[[Path], None]) -> None:
    db = crashed_db(tmp_path, "torn")
    wal = Path(f"{db}-wal")
    with open(wal, "r+b") as f:
        f.truncate(wal.stat().st_size - 1000)
    checked(db)
    assert rows(db) == 29  # the transaction being written is gone, as after any crash


def test_a_garbled_last_frame_is_a_torn_tail_not_damage(tmp_path: Path, checked: Callable[[Path], None]) -> None:
    # Damage in the last frame cannot be told from a write cut short: SQLite drops that one
    # transaction, which is all it can lose; nothing is refused.
    db = crashed_db(tmp_path, "garbled")
    frames = (Path(f"{db}-wal").stat().st_size - 32) // FRAME
    damage(db, flip(page_byte(frames)))
    checked(db)
    assert rows(db) == 29


def test_frames_of_an_older_generation_after_the_log_end_are_not_damage(
    tmp_path: Path, checked: Callable[[Path], None]
) -> None:
    db = crashed_db(tmp_path, "reused", transactions=10, restart=True)
    wal = Path(f"{db}-wal")
    assert (wal.stat().st_size - 32) // FRAME > 40  # old frames follow the new ones
    checked(db)
    assert rows(db) == 40
    # and damage in the new generation, with new commits after it, is still seen
    db = crashed_db(tmp_path, "reused-damaged", transactions=10, restart=True)
    damage(db, flip(page_byte(3)))
    with pytest.raises(WalDamagedError):
        checked(db)


def test_the_rest_of_a_transaction_another_writer_wrote_over_is_not_damage(
    tmp_path: Path, checked: Callable[[Path], None]
) -> None:
    # A writer killed after writing all the frames of a transaction, before marking it
    # committed; another connection, still open, then wrote a shorter transaction over its
    # start. What is left of the first chains on up to its commit frame: not damage, since
    # it never committed (the chaos test met this, with the sender process writing).
    live = tmp_path / "live"
    live.mkdir()
    conn = sqlite3.connect(live / "x.db", isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute("CREATE TABLE t (x BLOB)")
        for _ in range(10):
            conn.execute("INSERT INTO t VALUES (?)", (os.urandom(2000),))
        before = Path(f"{live / 'x.db'}-wal").read_bytes()
        conn.execute("BEGIN")
        for _ in range(4):
            conn.execute("INSERT INTO t VALUES (?)", (os.urandom(3000),))
        conn.execute("COMMIT")
        long_one = Path(f"{live / 'x.db'}-wal").read_bytes()
        database = (live / "x.db").read_bytes()
    finally:
        conn.close()
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.db").write_bytes(database)
    Path(f"{other / 'x.db'}-wal").write_bytes(before)
    conn = sqlite3.connect(other / "x.db", isolation_level=None)
    try:
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute("INSERT INTO t VALUES (x'00')")  # the other writer's short transaction
        short_one = Path(f"{other / 'x.db'}-wal").read_bytes()
        # keep the copy as a crash leaves it: before this connection's close checkpoints it
        crashed = tmp_path / "crashed"
        crashed.mkdir()
        (crashed / "x.db").write_bytes((other / "x.db").read_bytes())
    finally:
        conn.close()
    assert len(before) < len(short_one) < len(long_one)
    Path(f"{crashed / 'x.db'}-wal").write_bytes(short_one + long_one[len(short_one) :])
    checked(crashed / "x.db")
    assert rows(crashed / "x.db") == 11  # the ten, and the short one that did commit
