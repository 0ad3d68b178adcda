"""`wayline workers list` and the OWNER of runs on a SQLite database: its one owner is the
process that holds its lock, found by its pid (a real second process holds it here)."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Cli

# A worker as far as ownership goes: it opens the database and takes its owner lock, as
# open_runtime does, then waits to be killed.
_OWNER = """
import asyncio, sys
from wayline.persistence import SQLiteStore

async def main():
    store = SQLiteStore(sys.argv[1])
    await store.start()
    store.claim_ownership()
    print("owner", flush=True)
    await asyncio.sleep(120)

asyncio.run(main())
"""


@pytest.fixture
def owner(cli: Cli) -> Iterator[subprocess.Popen[str]]:
    with subprocess.Popen([sys.executable, "-c", _OWNER, cli.db], stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None and proc.stdout.readline() == "owner\n"
            yield proc
        finally:
            proc.kill()


def test_no_owner_is_said_and_runs_have_none(cli: Cli) -> None:
    res = cli("workers", "list")
    assert res.code == 0, res.err
    assert res.out.startswith(f"no process owns database {cli.db!r}")
    assert cli("workers", "list", "--json").json() == []
    listed = cli("runs", "list", "--json").json()
    assert {r["run_id"]: r["owner"] for r in listed} == {"waiting": None, "declined": None, "paid": None}
    table = cli("runs", "list").out.splitlines()
    assert table[0].split()[:5] == ["RUN", "ID", "WORKFLOW", "STATUS", "OWNER"]
    assert [line.split()[3] for line in table[1:]] == ["-", "-", "-"]


def test_the_owning_process_is_shown_with_the_runs_it_runs(cli: Cli, owner: subprocess.Popen[str]) -> None:
    label = f"{socket.gethostname()}:{owner.pid}"
    res = cli("workers", "list")
    assert res.code == 0, res.err
    header, row = res.out.splitlines()
    assert header.split() == ["PID", "HOST", "RUNS", "COMMAND"]
    assert row.split()[:3] == [str(owner.pid), socket.gethostname(), "1"]  # the one unfinished run
    assert f"{sys.executable} -c import asyncio" in row  # its command line
    assert "one worker" in res.err
    [doc] = cli("workers", "list", "--json").json()
    assert (doc["pid"], doc["runs"], doc["worker_id"], doc["lease_until"]) == (owner.pid, 1, None, None)
    listed = cli("runs", "list", "--json").json()
    # The owner runs the unfinished run; finished runs have no owner.
    assert {r["run_id"]: r["owner"] for r in listed} == {"waiting": label, "declined": None, "paid": None}
    table = cli("runs", "list").out.splitlines()
    assert [line.split()[3] for line in table[1:]] == [label, "-", "-"]
    shown = cli("runs", "show", "waiting").out
    assert f"owner        {label}" in shown
    assert "owner" not in cli("runs", "show", "paid").out
    # Once it is gone, the database has no owner again.
    owner.kill()
    owner.wait()
    assert cli("workers", "list", "--json").json() == []


def test_workers_list_needs_an_existing_database(cli: Cli, tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    res = cli("workers", "list", "--db", str(missing), db=False)
    assert res.code == 1
    assert res.err == (
        f"wayline: error: database {str(missing)!r} does not exist; pass --db PATH or set WAYLINE_DB "
        "(commands that read or send messages never create one)\n"
    )
    assert not missing.exists()


def test_workers_help_says_what_it_shows(cli: Cli) -> None:
    res = cli("workers", "list", "--help", db=False)
    assert res.code == 0
    text = " ".join(res.out.split())
    assert "registered worker" in text and "lease" in text and "one process that owns the database" in text
    assert "workers" in cli("--help", db=False).out
