"""Listing a page of runs out of many: `SQLiteStore.list_runs` as `wayline runs list` calls it.

The database is filled through the store's own schema with rows written straight into SQLite
(creating a million runs through ``rt.start`` would take minutes and measure something else);
each row is a real encoded `RunRecord`, so a listing decodes what it returns exactly as in use.
Runs are spread over 5 statuses and 10 workflows, one every 10 ms of creation time. Each page
is 20 runs newest first (the CLI's order), for each filter the CLI offers.

Every run also has metadata, indexed by the store's triggers as a run created through
``rt.start(..., metadata=..., tags=...)`` is: one of 100 customers (n/100 runs
each), one of 5 regions (n/5 each), and 1 run in 10 tagged "vip".
"""

from __future__ import annotations

import random
import sqlite3
import time
from typing import Any

from wayline.persistence import RunRecord, RunStatus, SQLiteStore, encode
from wayline.persistence._search import search_terms

from ._common import Metrics, Params, db_file, percentile

STATUSES = (RunStatus.SUCCEEDED, RunStatus.RUNNING, RunStatus.WAITING, RunStatus.FAILED, RunStatus.CANCELLED)
WORKFLOWS = tuple(f"wf{i}" for i in range(10))
PAGE = 20
CHUNK = 50_000  # rows per INSERT transaction while filling

#: name -> list_runs keyword arguments (``since`` is a fraction of the creation span: 0.5
#: keeps the newest half of the runs)
FILTERS: dict[str, dict[str, Any]] = {
    "none": {},
    "status": {"statuses": [RunStatus.FAILED]},
    "2 statuses": {"statuses": [RunStatus.FAILED, RunStatus.CANCELLED]},
    "workflow": {"workflow": "wf3"},
    "status+workflow": {"statuses": [RunStatus.FAILED], "workflow": "wf3"},
    "since": {"since": 0.5},
    "status+since": {"statuses": [RunStatus.FAILED], "since": 0.5},
    "2 statuses+workflow+since": {
        "statuses": [RunStatus.FAILED, RunStatus.CANCELLED],
        "workflow": "wf3",
        "since": 0.5,
    },
    # answered from the run_metadata index (`wayline runs list --where k=v --tag t`)
    "metadata": {"metadata": {"customer": "c-0042"}},
    "metadata+status": {"metadata": {"customer": "c-0042"}, "statuses": [RunStatus.FAILED]},
    "common metadata+since": {"metadata": {"region": "eu"}, "since": 0.5},
    "tag": {"tag": "vip"},
    # the common entry first: the store must start from the rarest term, not the first
    "2 metadata+tag": {"metadata": {"region": "eu", "customer": "c-0042"}, "tag": "vip"},
}
#: Filters that match fewer than a page at the small sizes (n/500 and n/5,000 runs match).
SPARSE = frozenset({"metadata+status", "2 metadata+tag"})
CUSTOMERS = 100
REGIONS = ("eu", "us", "apac", "latam", "mea")


def _fill(path: str, n: int, rng: random.Random) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = OFF")  # filling is not what is measured
        for start in range(0, n, CHUNK):
            rows = []
            for i in range(start, min(n, start + CHUNK)):
                record = RunRecord(
                    run_id=f"run-{i:08d}",
                    workflow=rng.choice(WORKFLOWS),
                    status=rng.choice(STATUSES),
                    created_at=1_700_000_000.0 + i * 0.01,
                    input={"order": i},
                    # customer and region independent (n/100 and n/5 runs each), 1 run in 10 "vip"
                    metadata={"customer": f"c-{i % CUSTOMERS:04d}", "region": REGIONS[(i // CUSTOMERS) % 5]},
                    tags=("vip",) if (i // 7) % 10 == 0 else (),
                )
                rows.append(
                    (
                        record.run_id,
                        record.workflow,
                        record.status.value,
                        record.created_at,
                        encode(record),
                        search_terms(record),
                    )
                )
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT INTO runs (run_id, workflow, status, created_at, snapshot, meta) VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


async def listing(params: Params) -> Metrics:
    """p50/p99 of one page (20 runs, newest first) for each filter, at ``n`` runs."""
    n, samples = int(params["n"]), int(params["samples"])
    rng = random.Random(params["seed"])
    path = str(db_file(params, "listing.db"))
    store = SQLiteStore(path)
    await store.start()  # the schema, with every migration
    await store.close()
    t0 = time.perf_counter()
    _fill(path, n, rng)
    filled_s = time.perf_counter() - t0
    span = (1_700_000_000.0, 1_700_000_000.0 + n * 0.01)
    store = SQLiteStore(path)
    await store.start()
    metrics: Metrics = {}
    try:
        for name, kwargs in FILTERS.items():
            args = dict(kwargs)
            if "since" in args:
                args["since"] = span[0] + (span[1] - span[0]) * args["since"]
            for _ in range(3):  # warm the page cache and the statement cache
                await store.list_runs(**args, newest_first=True, limit=PAGE)
            times = []
            for _ in range(samples):
                t = time.perf_counter()
                page = await store.list_runs(**args, newest_first=True, limit=PAGE)
                times.append(time.perf_counter() - t)
            if len(page) != PAGE and name not in SPARSE:
                raise AssertionError(f"filter {name!r} returned {len(page)} runs, not {PAGE}")
            if "metadata" in args and any(r.metadata.get(k) != v for r in page for k, v in args["metadata"].items()):
                raise AssertionError(f"filter {name!r} returned a run that does not match")
            metrics[f"{name}_p50_ms"] = percentile(times, 50) * 1000
            metrics[f"{name}_p99_ms"] = percentile(times, 99) * 1000
    finally:
        await store.close()
    metrics["worst_p50_ms"] = max(v for k, v in metrics.items() if k.endswith("_p50_ms"))
    metrics["note"] = f"{n:,} runs written in {filled_s:.1f}s; pages of {PAGE}, newest first"
    return metrics
