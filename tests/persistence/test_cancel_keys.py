"""The cancel-key index as each store keeps it: written per run and workflow, found by
candidate in one indexed query, removed per run (and per workflow)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from wayline.persistence import CancelCandidate, CancelKeyStore, SQLiteStore, Store, cancel_candidate, cancel_key

pytestmark = pytest.mark.anyio

NAME = "order/cancelled"


def table(store: Store) -> Any:
    keys = store.cancel_keys  # type: ignore[attr-defined]
    assert isinstance(keys, CancelKeyStore)
    return keys


def offer(workflow: str, key: Any) -> CancelCandidate:
    return CancelCandidate(workflow, key.paths, key.vals)


async def test_keys_are_found_by_candidate_replaced_and_removed(store: Store) -> None:
    keys = table(store)
    by_order = {o: cancel_key(NAME, {"order_id": o}) for o in ("o-1", "o-2")}
    every = cancel_key(NAME, {})
    await keys.set_cancel_keys("a", "order", [by_order["o-1"]])
    await keys.set_cancel_keys("b", "order", [by_order["o-2"], every])
    await keys.set_cancel_keys("c", "refund", [by_order["o-1"]])
    assert await keys.cancel_targets(NAME, [offer("order", by_order["o-1"])]) == ["a"]
    # An event offers its values at each workflow's paths; the runs of all match, each once.
    event = {"order_id": "o-1"}
    offers = [cancel_candidate(w, k.paths, event) for w in ("order", "refund") for k in (by_order["o-1"], every)]
    assert await keys.cancel_targets(NAME, [o for o in offers if o is not None]) == ["a", "b", "c"]
    assert cancel_candidate("order", by_order["o-1"].paths, {"other": 1}) is None  # it lacks the path
    assert await keys.cancel_targets("other/name", [offer("order", by_order["o-1"])]) == []
    # Written again: replaced (for that workflow only).
    await keys.set_cancel_keys("a", "order", [by_order["o-2"]])
    assert await keys.cancel_targets(NAME, [offer("order", by_order["o-1"])]) == []
    assert await keys.cancel_targets(NAME, [offer("order", by_order["o-2"])]) == ["a", "b"]
    await keys.remove_cancel_keys(["a", "c"], "refund")
    assert await keys.cancel_targets(NAME, [offer("refund", by_order["o-1"])]) == []
    assert await keys.cancel_targets(NAME, [offer("order", by_order["o-2"])]) == ["a", "b"]
    await keys.remove_cancel_keys(["a", "b"])
    assert await keys.cancel_targets(NAME, [offer("order", by_order["o-2"]), offer("order", every)]) == []


async def test_many_candidates_are_asked_in_batches(store: Store) -> None:
    keys = table(store)
    for i in range(450):
        await keys.set_cancel_keys(f"r{i}", "w", [cancel_key(NAME, {"n": i})])
    offers = [offer("w", cancel_key(NAME, {"n": i})) for i in range(0, 450, 2)] * 2
    assert await keys.cancel_targets(NAME, offers) == sorted(f"r{i}" for i in range(0, 450, 2))


async def test_sqlite_looks_keys_up_by_the_whole_primary_key(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "k.db")
    await store.start()
    try:
        await store.cancel_keys.set_cancel_keys("r", "w", [cancel_key(NAME, {"n": 1})])
    finally:
        await store.close()
    asked: list[tuple[str, Any]] = []
    conn = sqlite3.connect(tmp_path / "k.db")
    from wayline.persistence._cancel_keys_sql import SQLiteCancelKeys

    async def fetch(sql: str, params: Any) -> list[Any]:
        asked.append((sql, params))
        return conn.execute(sql, params).fetchall()

    found = await SQLiteCancelKeys(fetch, None).cancel_targets(  # type: ignore[arg-type]
        NAME, [offer("w", cancel_key(NAME, {"n": n})) for n in (1, 2)]
    )
    assert found == ["r"] and len(asked) == 1
    sql, params = asked[0]
    plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]
    assert not any("SCAN" in step for step in plan), plan
    lookups = [step for step in plan if "PRIMARY KEY (name=? AND paths=? AND vals=? AND workflow=?)" in step]
    assert len(lookups) == 2, plan
    conn.close()
