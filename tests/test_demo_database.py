"""The demo never loses anyone's runs: which database it runs on, decided before it writes.

Real SQLite files made by a real runtime; `choose` is what ``python -m wayline.demo`` calls
first (the end-to-end refusal through the ``wayline`` command is in tests/cli).
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path

import pytest

from wayline import RunContext, open_runtime, workflow
from wayline.demo._database import DatabaseRefused, choose
from wayline.demo._order import WORKFLOW


@workflow(name="order")  # the README's workflow: a name the demo must not take for its own
async def users_order(ctx: RunContext) -> int:
    return 1


@workflow(name=WORKFLOW)
async def demo_like(ctx: RunContext) -> int:
    return 2


def _make(path: Path, *workflows_and_ids: tuple[object, str]) -> None:
    async def go() -> None:
        async with open_runtime(str(path), workflows=[users_order, demo_like]) as rt:
            for wf, run_id in workflows_and_ids:
                await (await rt.start(wf, run_id=run_id)).result()  # type: ignore[call-overload]

    asyncio.run(go())


def _runs(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as conn:
        return sorted(conn.execute("SELECT run_id, workflow FROM runs").fetchall())


def test_without_db_each_demo_gets_a_fresh_temporary_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)  # re-read TMPDIR
    first, second = choose(None, keep=False), choose(None, keep=False)
    assert first.path != second.path
    for chosen in (first, second):
        assert Path(chosen.path).parent.parent == tmp_path
        assert not Path(chosen.path).exists() and not chosen.reused


def test_a_database_with_other_workflows_runs_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    db = tmp_path / "mine.db"
    _make(db, (users_order, "order-1001"), (demo_like, "order-1002"))
    before = db.read_bytes()
    for keep in (False, True):
        with pytest.raises(DatabaseRefused) as err:
            choose(str(db), keep=keep)
        message = str(err.value)
        assert "1 of 'order'" in message and "never writes to or deletes" in message
        assert "without --db" in message  # what to do instead
    assert db.read_bytes() == before
    assert _runs(db) == [("order-1001", "order"), ("order-1002", WORKFLOW)]


def test_an_earlier_demo_database_is_started_afresh_or_kept(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    _make(db, (demo_like, "order-1001"))
    kept = choose(str(db), keep=True)
    assert kept.reused and _runs(db) == [("order-1001", WORKFLOW)]
    fresh = choose(str(db), keep=False)
    assert fresh.path == str(db) and not fresh.reused
    assert not db.exists() and not Path(f"{db}-wal").exists()


def test_a_new_path_or_a_database_without_runs_is_used_as_it_is(tmp_path: Path) -> None:
    assert choose(str(tmp_path / "new.db"), keep=False).origin == "created for the demo"
    empty = tmp_path / "empty.db"
    _make(empty)
    before = empty.read_bytes()
    assert choose(str(empty), keep=False).path == str(empty)
    assert empty.read_bytes() == before  # not deleted, not changed


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("not a database at all\n" * 100, "cannot be read as a wayline database"),
        ("sqlite-other", "not a wayline one (tables: notes)"),
        ("directory", "is a directory"),
    ],
)
def test_anything_else_is_refused_with_the_reason(tmp_path: Path, content: str, why: str) -> None:
    path = tmp_path / "other.db"
    if content == "directory":
        path.mkdir()
    elif content == "sqlite-other":
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE notes (body TEXT)")
    else:
        path.write_text(content)
    with pytest.raises(DatabaseRefused, match=re.escape(why)):
        choose(str(path), keep=False)
    assert path.exists()


def test_keep_needs_a_database(tmp_path: Path) -> None:
    with pytest.raises(DatabaseRefused, match="--keep reuses a database given with --db"):
        choose(None, keep=True)
