"""The cancel-key index as each store keeps it: indexed from a run's metadata in the write
that creates (or redrives) the run, dropped in the one that ends it or purges it, and found
by candidate in one indexed query."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import msgspec
import pytest

from wayline.persistence import (
    CANCEL_KEYS_ENTRY,
    CancelCandidate,
    CancelKey,
    CancelKeyStore,
    RunRecord,
    RunStatus,
    SQLiteStore,
    Store,
    cancel_candidate,
    cancel_key,
    encode_cancel_keys,
)

pytestmark = pytest.mark.anyio

NAME = "order/cancelled"


def table(store: Store) -> Any:
    keys = store.cancel_keys  # type: ignore[attr-defined]
    assert isinstance(keys, CancelKeyStore)
    return keys


def offer(workflow: str, key: CancelKey) -> CancelCandidate:
    return CancelCandidate(workflow, key.paths, key.vals)


def run(run_id: str, workflow: str, *keys: CancelKey, status: RunStatus = RunStatus.RUNNING) -> RunRecord:
    metadata = {"corr": "c", CANCEL_KEYS_ENTRY: encode_cancel_keys(keys)} if keys else {}
    return RunRecord(run_id=run_id, workflow=workflow, status=status, created_at=1.0, metadata=metadata)


async def test_keys_follow_the_runs_rows(store: Store) -> None:
    keys = table(store)
    by_order = {o: cancel_key(NAME, {"order_id": o}) for o in ("o-1", "o-2")}
    every = cancel_key(NAME, {})
    a = run("a", "order", by_order["o-1"])
    await store.create_run(a, [])
    await store.create_run(run("b", "order", by_order["o-2"], every), [])
    await store.create_run(run("c", "refund", by_order["o-1"]), [])
    await store.create_run(run("d", "order"), [])  # no keys
    assert await keys.cancel_targets(NAME, [offer("order", by_order["o-1"])]) == ["a"]
    # An event offers its values at each workflow's paths; the runs of all match, each once.
    event = {"order_id": "o-1"}
    offers = [cancel_candidate(w, k.paths, event) for w in ("order", "refund") for k in (by_order["o-1"], every)]
    assert await keys.cancel_targets(NAME, [o for o in offers if o is not None]) == ["a", "b", "c"]
    assert cancel_candidate("order", by_order["o-1"].paths, {"other": 1}) is None  # it lacks the path
    assert await keys.cancel_targets("other/name", [offer("order", by_order["o-1"])]) == []
    # Created again: the existing run keeps its own keys.
    await store.create_run(run("a", "order", by_order["o-2"]), [])
    assert await keys.cancel_targets(NAME, [offer("order", by_order["o-2"])]) == ["b"]
    # Checkpoints keep them; the one that ends the run drops them; a redrive brings them back.
    waiting = msgspec.structs.replace(a, status=RunStatus.WAITING, history_seq=1)
    await store.checkpoint(waiting, [])
    assert await keys.cancel_targets(NAME, [offer("order", by_order["o-1"])]) == ["a"]
    ended = msgspec.structs.replace(waiting, status=RunStatus.CANCELLED, history_seq=2)
    await store.checkpoint(ended, [])
    assert await keys.cancel_targets(NAME, [offer("order", by_order["o-1"])]) == []
    assert await keys.cancel_targets(NAME, [offer("refund", by_order["o-1"])]) == ["c"]
    redriven = msgspec.structs.replace(ended, status=RunStatus.RUNNING, history_seq=3)
    await store.checkpoint(redriven, [])
    assert await keys.cancel_targets(NAME, [offer("order", by_order["o-1"])]) == ["a"]


async def test_a_purge_takes_the_keys_of_the_runs_it_removes(store: Store) -> None:
    key = cancel_key(NAME, {"order_id": "p"})
    ended = run("p", "order", key, status=RunStatus.SUCCEEDED)
    await store.create_run(msgspec.structs.replace(ended, status=RunStatus.RUNNING), [])
    assert await table(store).cancel_targets(NAME, [offer("order", key)]) == ["p"]
    await store.checkpoint(msgspec.structs.replace(ended, ended_at=2.0, history_seq=1), [])
    assert await store.purge_runs(before=10.0) == ["p"]
    assert await table(store).cancel_targets(NAME, [offer("order", key)]) == []


async def test_many_candidates_are_asked_in_batches(store: Store) -> None:
    for i in range(450):
        await store.create_run(run(f"r{i}", "w", cancel_key(NAME, {"n": i})), [])
    offers = [offer("w", cancel_key(NAME, {"n": i})) for i in range(0, 450, 2)] * 2
    assert await table(store).cancel_targets(NAME, offers) == sorted(f"r{i}" for i in range(0, 450, 2))


async def test_sqlite_looks_keys_up_by_the_whole_primary_key(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "k.db")
    await store.start()
    try:
        await store.create_run(run("r", "w", cancel_key(NAME, {"n": 1})), [])
    finally:
        await store.close()
    asked: list[tuple[str, Any]] = []
    conn = sqlite3.connect(tmp_path / "k.db")
    from wayline.persistence._cancel_keys_sql import SQLiteCancelKeys

    async def fetch(sql: str, params: Any) -> list[Any]:
        asked.append((sql, params))
        return conn.execute(sql, params).fetchall()

    found = await SQLiteCancelKeys(fetch).cancel_targets(NAME, [offer("w", cancel_key(NAME, {"n": n})) for n in (1, 2)])
    assert found == ["r"] and len(asked) == 1
    sql, params = asked[0]
    plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]
    assert not any("SCAN" in step for step in plan), plan
    lookups = [step for step in plan if "PRIMARY KEY (name=? AND paths=? AND vals=? AND workflow=?)" in step]
    assert len(lookups) == 2, plan
    conn.close()
