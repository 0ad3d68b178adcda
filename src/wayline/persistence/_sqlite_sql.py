"""The SQL text of the SQLite store, and the helpers that build its multi-row statements."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Collection
from typing import Any

from ._records import ACCEPTING, RunStatus

# One row per run: a create inserts it, a checkpoint replaces its mutable columns.
# ``meta`` feeds the metadata index through triggers (migration 6), which act only when it changes.
UPSERT_RUN_HEAD = "INSERT INTO runs (run_id, workflow, status, created_at, wake_at, snapshot, meta) VALUES "
UPSERT_RUN_TAIL = (
    " ON CONFLICT (run_id) DO UPDATE SET status = excluded.status, wake_at = excluded.wake_at, "
    "snapshot = excluded.snapshot, meta = excluded.meta"
)
# A checkpoint of a run whose row is RUNNING with no wake time and stays so (a run stepping):
# only its snapshot changes. Not naming status and wake_at spares the rewrite of the four
# indexes on them, which SQLite does for every column named in SET, changed or not (about
# half the writer's time per row, measured with 10,000 rows).
# ``meta`` too: a running run may set its metadata (its triggers act only when it changes).
UPSERT_SNAPSHOT_TAIL = " ON CONFLICT (run_id) DO UPDATE SET snapshot = excluded.snapshot, meta = excluded.meta"
RUN_WIDTH = 7
INSERT_HISTORY_HEAD = "INSERT INTO history (run_id, seq, events) VALUES "
# Blobs are content-addressed: one already stored (by this run or another) is the same value.
INSERT_BLOB_HEAD = "INSERT OR IGNORE INTO blobs (digest, size, data) VALUES "
INSERT_RUN_BLOB_HEAD = "INSERT OR IGNORE INTO run_blobs (run_id, digest) VALUES "
# A row written where one is already replaces it: the rows of a run continued as new are
# written from seq 0 again, over those of its earlier segment (see `decode_history`).
INSERT_HISTORY_TAIL = " ON CONFLICT (run_id, seq) DO UPDATE SET events = excluded.events"
# A message is stored only for a run that exists and has not finished, in the transaction that
# stores it: the final checkpoint of a run deletes its messages, and none can come after.
APPEND_INBOX = (
    "INSERT INTO inbox (run_id, message) SELECT ?, ? "
    "WHERE EXISTS (SELECT 1 FROM runs WHERE run_id = ? AND status IN ("
    + ", ".join(f"'{status.value}'" for status in ACCEPTING)
    + "))"
)
# The timer index. The unary + on status keeps SQLite off runs_by_status, which it would pick
# for the equality and which scans every waiting run (200 ms at a million, at each timer
# wake-up); runs_by_wake reads only the runs that are due.
DUE_RUNS = (
    "SELECT run_id, wake_at FROM runs WHERE wake_at IS NOT NULL AND wake_at <= ? AND +status = ? "
    "ORDER BY wake_at LIMIT ?"
)
NEXT_WAKE = "SELECT MIN(wake_at) FROM runs WHERE wake_at IS NOT NULL AND wake_at > ? AND +status = ?"
INBOX_SINCE = "SELECT seq, run_id, message FROM inbox WHERE seq > ? ORDER BY seq LIMIT ?"
INBOX_OF_RUN = "SELECT seq, message FROM inbox WHERE run_id = ? ORDER BY seq"
GET_RUN = "SELECT snapshot FROM runs WHERE run_id = ?"
# One statement, so one read snapshot: rows and tail cannot straddle a checkpoint that moves
# the tail into a new row.
GET_HISTORY = (
    "SELECT 0, seq, events FROM history WHERE run_id = ? "
    "UNION ALL SELECT 1, 0, snapshot FROM runs WHERE run_id = ? ORDER BY 1, 2"
)
# Bound parameters per statement: SQLite's default limit since 3.32 is 32766. Few, large
# statements matter: the writer thread re-takes the GIL after every statement, and while the
# event loop is busy each re-take can wait a whole switch interval (5 ms).
MAX_PARAMS = 30000


def chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


@functools.cache
def row_marks(width: int) -> str:
    return "(" + ", ".join("?" * width) + ")"


def marks(count: int) -> str:
    return ", ".join("?" * count)


def insert_rows(conn: sqlite3.Connection, head: str, tail: str, width: int, rows: list[tuple[Any, ...]]) -> None:
    """Insert ``rows`` with as few multi-row statements as possible."""
    if not rows:
        return
    one = row_marks(width)
    if len(rows) == 1:
        # A run stepping alone pays this on every step: no list building, and one text that
        # the sqlite3 module's statement cache keeps compiled.
        conn.execute(head + one + tail, rows[0])
        return
    limit = min(MAX_PARAMS, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
    for chunk in chunks(rows, max(1, limit // width)):
        sql = head + ", ".join([one] * len(chunk)) + tail
        conn.execute(sql, [value for row in chunk for value in row])


def count_runs(statuses: Collection[RunStatus]) -> tuple[str, list[Any]]:
    return f"SELECT COUNT(*) FROM runs WHERE status IN ({marks(len(statuses))})", [s.value for s in statuses]


def _where(conditions: list[str]) -> str:
    return " WHERE " + " AND ".join(conditions) if conditions else ""


def list_runs(
    statuses: Collection[RunStatus] | None,
    workflow: str | None,
    since: float | None,
    newest_first: bool,
    limit: int | None,
    terms: list[tuple[str, Any]] | None = None,
) -> tuple[str, list[Any]]:
    """The query behind `Store.list_runs`, and its parameters.

    With a limit, each filter is an index range scan that stops after ``limit`` entries
    (migration 4 gives every combination of status and workflow an index ending in the
    listing order). Several statuses are one such scan per status, merged: an ``IN`` list
    would make SQLite sort every matching run.
    """
    if terms:
        return _list_by_terms(statuses, workflow, since, newest_first, limit, terms)
    order = " ORDER BY created_at DESC, run_id DESC" if newest_first else " ORDER BY created_at, run_id"
    chosen = [s.value for s in dict.fromkeys(statuses)] if statuses is not None else None
    others: list[str] = []
    values: list[Any] = []
    if workflow is not None:
        others.append("workflow = ?")
        values.append(workflow)
    if since is not None:
        others.append("created_at >= ?")
        values.append(since)
    if chosen == []:
        return "SELECT run_id, snapshot FROM runs WHERE 0", []
    if limit is None:  # every matching run: reading them all is the job
        if chosen is None:
            return f"SELECT run_id, snapshot FROM runs{_where(others)}{order}", values
        statuses_in = f"status IN ({marks(len(chosen))})"
        return f"SELECT run_id, snapshot FROM runs{_where([statuses_in, *others])}{order}", [*chosen, *values]
    if chosen is None or len(chosen) == 1:
        one = [] if chosen is None else ["status = ?"]
        pick = f"SELECT rowid FROM runs{_where([*one, *others])}{order} LIMIT ?"
        params = [*(chosen or ()), *values, limit]
    else:
        scan = f"SELECT rowid AS r, created_at AS c, run_id AS k FROM runs{_where(['status = ?', *others])}{order}"
        merged = " UNION ALL ".join([f"SELECT * FROM ({scan} LIMIT ?)"] * len(chosen))
        merge_order = order.replace("created_at", "c").replace("run_id", "k")
        pick = f"SELECT r FROM ({merged}{merge_order} LIMIT ?)"
        params = [value for status in chosen for value in (status, *values, limit)] + [limit]
    # The rows are picked without their snapshots (a sort would carry every matching
    # snapshot along), then only the chosen ones are read.
    return f"SELECT run_id, snapshot FROM runs WHERE rowid IN ({pick}){order}", params


#: Entries read to estimate how rare a search term is where a listing starts.
SAMPLE = 64


def term_reach(key: str, value: Any, newest_first: bool, since: float | None) -> tuple[str, list[Any]]:
    """How far (in creation time) a listing must go to see `SAMPLE` runs with this term.

    A listing with several terms walks the rarest one's index range in listing order and
    probes the others: walking a common one would probe a thousand entries for each match of
    a rare one. The rarest term is the one whose first `SAMPLE` entries, from where the listing
    starts, reach furthest: a read of `SAMPLE` index entries per term, whatever the table's
    size, and measured where the page is. No row: fewer than `SAMPLE` runs have the term.
    """
    params: list[Any] = [key, _term_value(value)]
    since_cond = ""
    if since is not None:
        since_cond = " AND created_at >= ?"
        params.append(since)
    order = "DESC" if newest_first else "ASC"
    sql = (
        f"SELECT created_at FROM run_metadata WHERE key = ? AND value = ?{since_cond} "
        f"ORDER BY created_at {order}, run_id {order} LIMIT 1 OFFSET {SAMPLE - 1}"
    )
    return sql, params


def _term_value(value: Any) -> Any:
    return int(value) if isinstance(value, bool) else value  # json_each gives booleans as 0/1


def _list_by_terms(
    statuses: Collection[RunStatus] | None,
    workflow: str | None,
    since: float | None,
    newest_first: bool,
    limit: int | None,
    terms: list[tuple[str, Any]],
) -> tuple[str, list[Any]]:
    """A listing filtered on metadata or tags: the first term's index range, read in listing
    order (the index holds created_at), each other term one primary-key lookup per candidate,
    the status and workflow checked on the run's row; it stops once ``limit`` runs match."""
    (key, value), others = terms[0], terms[1:]
    where = ["m.key = ?", "m.value = ?"]
    params: list[Any] = [key, _term_value(value)]
    if since is not None:
        where.append("m.created_at >= ?")
        params.append(since)
    for other_key, other_value in others:
        where.append(
            "EXISTS (SELECT 1 FROM run_metadata o WHERE o.key = ? AND o.value = ? "
            "AND o.created_at = m.created_at AND o.run_id = m.run_id)"
        )
        params += [other_key, _term_value(other_value)]
    if statuses is not None:
        chosen = [s.value for s in dict.fromkeys(statuses)]
        if not chosen:
            return "SELECT run_id, snapshot FROM runs WHERE 0", []
        where.append(f"r.status IN ({marks(len(chosen))})")
        params += chosen
    if workflow is not None:
        where.append("r.workflow = ?")
        params.append(workflow)
    direction = " DESC" if newest_first else ""
    sql = (
        "SELECT r.run_id, r.snapshot FROM run_metadata m JOIN runs r ON r.run_id = m.run_id"
        f"{_where(where)} ORDER BY m.created_at{direction}, m.run_id{direction}"
    )
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return sql, params
