"""Who may open a database: one owner per file (whatever name reaches it), no file with two
names, and a read-only database refused at once, saying so."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from durability._procs import Worker, mount_tmpfs, unmount
from wayline import open_runtime
from wayline._errors import DatabaseLinkedError, DatabaseOwnedError, DatabaseReadOnlyError


async def open_and_close(path: Path, *, worker: bool = True) -> None:
    async with open_runtime(path, worker=worker, inbox_poll_interval=None):
        pass


def wayline_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wayline.cli", *args], capture_output=True, text=True, timeout=60, check=False
    )


def owner_process(db: Path) -> Worker:
    """A worker that owns ``db`` (its one run waits in its second step)."""
    worker = Worker("store_fault_worker.py", [str(db), "outage", "1"])
    worker.expect("READY")
    return worker


def test_a_second_name_for_the_database_is_refused_as_owner_and_as_client(tmp_path: Path) -> None:
    db, alias = tmp_path / "wayline.db", tmp_path / "other" / "alias.db"
    alias.parent.mkdir()
    worker = owner_process(db)
    try:
        os.link(db, alias)  # the same file, under a name whose -wal would be another file
        for recover in (True, False):
            with pytest.raises(DatabaseLinkedError) as info:
                asyncio.run(open_and_close(alias, worker=recover))
            assert "2 hard links" in str(info.value) and "-wal" in str(info.value)
        shown = wayline_cli("--db", str(alias), "runs", "list")
        assert shown.returncode == 1 and "hard links" in shown.stderr, shown.stderr
    finally:
        worker.close()


def test_the_owner_lock_is_on_the_file_not_its_name(tmp_path: Path) -> None:
    # The database renamed while its owner runs: the old lock on "<name>.owner" let a second
    # owner in under the new name; the lock on the file itself does not.
    db, moved = tmp_path / "wayline.db", tmp_path / "moved.db"
    worker = owner_process(db)
    try:
        db.rename(moved)
        with pytest.raises(DatabaseOwnedError):
            asyncio.run(open_and_close(moved))
    finally:
        worker.close()
    asyncio.run(open_and_close(moved))  # the owner is gone: the file can be owned again


def test_no_owner_file_is_left_beside_the_database_and_an_older_one_is_honoured(tmp_path: Path) -> None:
    db = tmp_path / "wayline.db"
    asyncio.run(open_and_close(db))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wayline.db"]
    # An older wayline locks <db>.owner: while it runs, a newer one is kept off too.
    legacy = tmp_path / "wayline.db.owner"
    legacy.touch()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys; f = open(sys.argv[1], 'r+'); fcntl.flock(f, fcntl.LOCK_EX); "
            "print('HELD', flush=True); sys.stdin.read()",
            str(legacy),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "HELD"
        with pytest.raises(DatabaseOwnedError):
            asyncio.run(open_and_close(db))
    finally:
        holder.communicate("")
    asyncio.run(open_and_close(db))  # released: fine again


@pytest.fixture
def small_disk(tmp_path: Path) -> object:
    disk = tmp_path / "disk"
    mount_tmpfs(disk, "4m")
    try:
        yield disk
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(disk)], capture_output=True, check=False)
        subprocess.run(["chattr", "-i", str(disk / "wayline.db")], capture_output=True, check=False)
        unmount(disk)


def test_a_read_only_filesystem_is_named_as_such(small_disk: Path) -> None:
    db = small_disk / "wayline.db"
    asyncio.run(open_and_close(db))
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    for recover in (True, False):
        with pytest.raises(DatabaseReadOnlyError) as info:
            asyncio.run(open_and_close(db, worker=recover))
        assert "is read-only" in str(info.value) and "mounted read-only" in str(info.value)
        assert "remount the filesystem read-write" in str(info.value)
    shown = wayline_cli("--db", str(db), "runs", "list")
    assert shown.returncode == 1 and "read-only" in shown.stderr, shown.stderr


def test_a_read_only_database_file_is_named_as_such(small_disk: Path) -> None:
    db = small_disk / "wayline.db"
    asyncio.run(open_and_close(db))
    # chattr +i: not writable even by root (who ignores permission bits)
    if subprocess.run(["chattr", "+i", str(db)], capture_output=True, check=False).returncode != 0:
        pytest.skip("this filesystem does not take an immutable flag")
    with pytest.raises(DatabaseReadOnlyError) as info:
        asyncio.run(open_and_close(db))
    assert "the database file" in str(info.value) and "is not writable" in str(info.value)
