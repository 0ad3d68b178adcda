"""Listings read only the runs they return: every filter `wayline runs list` offers is an
index range scan, checked by SQLite's query plan and by the work its VM does."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from wayline.persistence import RunRecord, RunStatus, SQLiteStore, encode
from wayline.persistence._sqlite_sql import list_runs

STATUSES = (RunStatus.RUNNING, RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.WAITING)

# (statuses, workflow, since): each filter the CLI offers, alone and combined
FILTERS: list[tuple[list[RunStatus] | None, str | None, float | None]] = [
    (statuses, workflow, since)
    for statuses, workflow, since in itertools.product(
        [None, [RunStatus.FAILED], [RunStatus.FAILED, RunStatus.CANCELLED]], [None, "old"], [None, 100.0]
    )
]


def make_db(path: Path, runs: int) -> sqlite3.Connection:
    """A store's schema holding ``runs`` runs: statuses and workflows mixed, the 200 oldest of
    workflow "old", so that a listing of it that walked the newest runs first would read them all."""

    async def create_schema() -> None:
        store = SQLiteStore(path)
        await store.start()
        await store.close()

    asyncio.run(create_schema())
    conn = sqlite3.connect(path, isolation_level=None)
    rows = []
    for i in range(runs):
        status = STATUSES[i % len(STATUSES)]
        record = RunRecord(
            run_id=f"r{i:07d}", workflow="old" if i < 200 else f"w{i % 7}", status=status, created_at=float(i)
        )
        rows.append((record.run_id, record.workflow, status.value, record.created_at, None, encode(record)))
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO runs (run_id, workflow, status, created_at, wake_at, snapshot) VALUES (?, ?, ?, ?, ?, ?)", rows
    )
    conn.execute("COMMIT")
    return conn


def vm_steps(conn: sqlite3.Connection, sql: str, params: list[Any]) -> tuple[int, int]:
    """SQLite VM instructions spent on a query, and the rows it returned."""
    count = 0

    def tick() -> int:
        nonlocal count
        count += 1
        return 0

    conn.set_progress_handler(tick, 1)
    try:
        found = len(conn.execute(sql, params).fetchall())
    finally:
        conn.set_progress_handler(None, 1)
    return count, found


@pytest.mark.parametrize("newest_first", [True, False], ids=["newest-first", "oldest-first"])
@pytest.mark.parametrize(("statuses", "workflow", "since"), FILTERS)
def test_each_listing_is_an_index_range_scan(
    tmp_path: Path, statuses: list[RunStatus] | None, workflow: str | None, since: float | None, newest_first: bool
) -> None:
    conn = make_db(tmp_path / "plan.db", 10)
    try:
        sql, params = list_runs(statuses, workflow, since, newest_first, 20)
        plan = [row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
    finally:
        conn.close()
    reads = [step for step in plan if step.startswith(("SCAN runs", "SEARCH runs"))]
    for step in reads:
        # the chosen rows by rowid; everything else from an index that holds the filter's
        # columns and the order (covering: no table row is read to filter or sort)
        assert step == "SEARCH runs USING INTEGER PRIMARY KEY (rowid=?)" or "USING COVERING INDEX" in step, plan
        if step.startswith("SCAN runs"):  # a whole index, in order, stopped by the limit
            assert not (statuses or workflow or since), plan
    assert not any("RIGHT PART OF ORDER BY" in step for step in plan), plan


@pytest.mark.parametrize(("statuses", "workflow", "since"), FILTERS)
def test_a_page_of_a_listing_costs_the_same_at_2000_and_20000_runs(
    tmp_path: Path, statuses: list[RunStatus] | None, workflow: str | None, since: float | None
) -> None:
    small, large = make_db(tmp_path / "small.db", 2_000), make_db(tmp_path / "large.db", 20_000)
    try:
        for newest_first in (True, False):
            sql, params = list_runs(statuses, workflow, since, newest_first, 20)
            small_steps, small_rows = vm_steps(small, sql, params)
            large_steps, large_rows = vm_steps(large, sql, params)
            assert small_rows == large_rows == 20
            # Ten times the runs, the same page: an index range scan does the same work (an
            # O(N) listing did ~10 times as much here).
            assert large_steps < small_steps * 1.3, (newest_first, small_steps, large_steps)
    finally:
        small.close()
        large.close()
