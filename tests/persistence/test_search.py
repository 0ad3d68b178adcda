"""Search by metadata and tags: every store answers the same listings; SQLite and PostgreSQL
from the run_metadata index, kept in step with each run's metadata by triggers."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec
import pytest

from wayline.errors import MetadataError
from wayline.persistence import RunRecord, RunStatus, SQLiteStore, Store
from wayline.persistence._sqlite_sql import list_runs

pytestmark = pytest.mark.anyio


def run(i: int, **fields: object) -> RunRecord:
    fields.setdefault("workflow", "w")
    return RunRecord(run_id=f"r{i:03d}", status=RunStatus.RUNNING, created_at=float(i), **fields)  # type: ignore[arg-type]


async def seed(store: Store) -> None:
    for i in range(12):
        customer = "c1" if i % 2 == 0 else "c2"
        tags = ("vip",) if i % 3 == 0 else ()
        await store.create_run(
            run(
                i,
                metadata={"customer": customer, "n": i % 4, "flag": i % 5 == 0},
                tags=tags,
                workflow="w" if i < 6 else "v",
            ),
            [],
        )


async def ids(store: Store, **filters: object) -> list[str]:
    return [r.run_id for r in await store.list_runs(**filters)]  # type: ignore[arg-type]


async def test_listing_by_metadata_and_tag(store: Store) -> None:
    await seed(store)
    assert await ids(store, metadata={"customer": "c1"}) == [f"r{i:03d}" for i in range(0, 12, 2)]
    assert await ids(store, tag="vip") == ["r000", "r003", "r006", "r009"]
    assert await ids(store, metadata={"customer": "c1"}, tag="vip") == ["r000", "r006"]
    assert await ids(store, metadata={"customer": "c2", "n": 1}) == ["r001", "r005", "r009"]
    # numbers compare as numbers, booleans as 0/1, in every store
    assert await ids(store, metadata={"n": 1.0, "customer": "c2"}) == ["r001", "r005", "r009"]
    assert await ids(store, metadata={"flag": True}) == ["r000", "r005", "r010"]
    # the other filters, the order and the limit apply on top
    assert await ids(store, metadata={"customer": "c1"}, workflow="v") == ["r006", "r008", "r010"]
    assert await ids(store, metadata={"customer": "c1"}, since=5.0, newest_first=True, limit=2) == ["r010", "r008"]
    assert await ids(store, metadata={"customer": "c1"}, statuses=[RunStatus.FAILED]) == []
    assert await ids(store, metadata={"customer": "nobody"}) == []
    assert await ids(store, tag="none") == []


async def test_a_checkpoint_moves_the_run_between_searches(store: Store) -> None:
    await seed(store)
    rec = (await store.list_runs(metadata={"customer": "c1"}, limit=1))[0]
    changed = msgspec.structs.replace(
        rec, metadata={**rec.metadata, "customer": "c9"}, tags=("late",), status=RunStatus.SUCCEEDED
    )
    await store.checkpoint(changed, [])
    assert "r000" not in await ids(store, metadata={"customer": "c1"})
    assert await ids(store, metadata={"customer": "c9"}) == ["r000"]
    assert await ids(store, tag="late", statuses=[RunStatus.SUCCEEDED]) == ["r000"]
    assert "r000" not in await ids(store, tag="vip")
    # metadata emptied: out of every search
    await store.checkpoint(msgspec.structs.replace(changed, metadata={}, tags=()), [])
    assert await ids(store, metadata={"customer": "c9"}) == []
    assert await ids(store, tag="late") == []


async def test_only_scalar_user_entries_are_searchable(store: Store) -> None:
    await store.create_run(run(1, metadata={"nested": {"a": 1}, "wayline.x": "y", "k": "v"}), [])
    assert await ids(store, metadata={"k": "v"}) == ["r001"]
    with pytest.raises(MetadataError, match="only str, int, float and bool"):
        await store.list_runs(metadata={"nested": {"a": 1}})
    with pytest.raises(MetadataError, match="wayline"):
        await store.list_runs(metadata={"wayline.x": "y"})
    with pytest.raises(MetadataError, match="tag"):
        await store.list_runs(tag="")


def _plan(conn: sqlite3.Connection, sql: str, params: list[object]) -> str:
    return " | ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params))


async def test_sqlite_answers_from_the_index(tmp_path: Path) -> None:
    """The plan reads run_metadata in listing order (no sort, no scan of runs), and the index
    holds one row per searchable entry, rewritten only when the metadata changes."""
    path = tmp_path / "s.db"
    store = SQLiteStore(path)
    await store.start()
    try:
        await seed(store)
        rec = (await store.list_runs(metadata={"customer": "c1"}, limit=1))[0]
        conn = sqlite3.connect(path)
        rows = conn.execute("SELECT key, value FROM run_metadata WHERE run_id = 'r000' ORDER BY key").fetchall()
        assert rows == [("", "vip"), ("customer", "c1"), ("flag", 1), ("n", 0)]
        for terms, extra in (([("customer", "c1")], {}), ([("customer", "c1"), ("", "vip")], {"workflow": "v"})):
            plan = _plan(conn, *list_runs([RunStatus.RUNNING], extra.get("workflow"), 3.0, True, 10, terms))
            assert "SEARCH m USING PRIMARY KEY (key=? AND value=? AND created_at>?)" in plan, plan
            assert "TEMP B-TREE" not in plan and "SCAN r" not in plan, plan
        # a checkpoint with the same metadata rewrites no index row
        before = conn.execute("SELECT count(*) FROM run_metadata").fetchone()
        conn.execute("CREATE TABLE seen (n INTEGER)")
        conn.execute("CREATE TRIGGER count_index AFTER INSERT ON run_metadata BEGIN INSERT INTO seen VALUES (1); END")
        conn.commit()
        await store.checkpoint(msgspec.structs.replace(rec, steps=5), [])
        assert conn.execute("SELECT count(*) FROM seen").fetchone() == (0,)
        await store.checkpoint(msgspec.structs.replace(rec, steps=6, metadata={**rec.metadata, "extra": "x"}), [])
        assert conn.execute("SELECT count(*) FROM seen").fetchone() == (5,)  # the run's entries, written again
        assert conn.execute("SELECT count(*) FROM run_metadata").fetchone() == (before[0] + 1,)
        conn.close()
    finally:
        await store.close()
