"""Purging finished runs: what a purge deletes, in one transaction per batch.

A purged run goes with everything that is only its own: its row (and with it, by trigger,
its metadata index rows), its history, inbox messages left for it, its cancel keys
(`_cancel_keys`), its references to blobs, and the blobs that no run refers to any more.
Callback tokens are not stored apart (a run's snapshot holds their digests), so they go with
the run. Runs are chosen among the finished ones by creation time (indexed), then kept only
if they *ended* before the cutoff (a run ends after it is created, so the index range holds
every run that qualifies).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection

from ._codec import decode_record
from ._records import RunStatus
from ._sqlite_sql import chunks, marks

FINISHED: tuple[RunStatus, ...] = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)
#: Runs per purge transaction: small, so a purge never holds the writer long enough to delay
#: the checkpoints queued behind it by more than a few milliseconds.
BATCH = 200


def ended_before(data: bytes, before: float) -> bool:
    """Whether the encoded snapshot ``data`` is of a run that ended before ``before``."""
    try:
        ended = decode_record(data).ended_at
    except Exception:  # a damaged snapshot is not purged blindly: it is looked at by hand
        return False
    return ended is not None and ended < before


def check_statuses(statuses: Collection[RunStatus] | None) -> list[str]:
    chosen = list(FINISHED) if statuses is None else list(dict.fromkeys(statuses))
    for status in chosen:
        if not status.finished:
            raise ValueError(
                f"only finished runs can be purged, not {status.value} ones (use SUCCEEDED, FAILED, CANCELLED)"
            )
    return [s.value for s in chosen]


def sqlite_purge(
    conn: sqlite3.Connection,
    before: float,
    statuses: list[str],
    workflow: str | None,
    limit: int | None,
    dry_run: bool,
) -> list[str]:
    """One purge batch on SQLite, inside the caller's transaction: the ids purged (with
    ``dry_run``, the ids that would be, and nothing deleted)."""
    where = [f"status IN ({marks(len(statuses))})", "created_at < ?"]
    params: list[object] = [*statuses, before]
    if workflow is not None:
        where.append("workflow = ?")
        params.append(workflow)
    # Scanned in creation order, past runs that ended too late, until ``limit`` qualify.
    picked: list[str] = []
    sql = f"SELECT run_id, snapshot FROM runs WHERE {' AND '.join(where)} ORDER BY created_at, run_id"
    for run_id, data in conn.execute(sql, params):
        if ended_before(data, before):
            picked.append(run_id)
            if limit is not None and len(picked) >= limit:
                break
    if dry_run or not picked:
        return picked
    digests: set[str] = set()
    for chunk in chunks(picked, 500):
        ids = marks(len(chunk))
        digests.update(d for (d,) in conn.execute(f"SELECT digest FROM run_blobs WHERE run_id IN ({ids})", chunk))
        conn.execute(f"DELETE FROM run_blobs WHERE run_id IN ({ids})", chunk)
        conn.execute(f"DELETE FROM history WHERE run_id IN ({ids})", chunk)
        conn.execute(f"DELETE FROM inbox WHERE run_id IN ({ids})", chunk)
        conn.execute(f"DELETE FROM cancel_keys WHERE run_id IN ({ids})", chunk)
        conn.execute(f"DELETE FROM runs WHERE run_id IN ({ids})", chunk)
    for chunk in chunks(sorted(digests), 500):
        conn.execute(
            f"DELETE FROM blobs WHERE digest IN ({marks(len(chunk))}) "
            "AND NOT EXISTS (SELECT 1 FROM run_blobs r WHERE r.digest = blobs.digest)",
            chunk,
        )
    return picked


#: One purge batch on PostgreSQL, one statement: $1 statuses, $2 before, $3 workflow (NULL:
#: any), $4 the runs picked (chosen by the caller from `PG_CANDIDATES`, ended before $2).
PG_CANDIDATES = (
    "SELECT run_id, snapshot FROM wayline.runs WHERE status = ANY($1::text[]) AND created_at < $2 "
    "AND ($3::text IS NULL OR workflow = $3) ORDER BY created_at, run_id LIMIT $4"
)
PG_PURGE = """
WITH
gone_runs AS (DELETE FROM wayline.runs WHERE run_id = ANY($1::text[]) AND status = ANY($2::text[]) RETURNING run_id),
gone_hist AS (DELETE FROM wayline.history WHERE run_id IN (SELECT run_id FROM gone_runs)),
gone_inbox AS (DELETE FROM wayline.inbox WHERE run_id IN (SELECT run_id FROM gone_runs)),
gone_cancel AS (DELETE FROM wayline.cancel_keys WHERE run_id IN (SELECT run_id FROM gone_runs)),
gone_refs AS (DELETE FROM wayline.run_blobs WHERE run_id IN (SELECT run_id FROM gone_runs) RETURNING digest),
gone_blobs AS (
    DELETE FROM wayline.blobs b WHERE b.digest IN (SELECT digest FROM gone_refs)
      AND NOT EXISTS (SELECT 1 FROM wayline.run_blobs r WHERE r.digest = b.digest
                      AND r.run_id NOT IN (SELECT run_id FROM gone_runs)))
SELECT ARRAY(SELECT run_id FROM gone_runs ORDER BY run_id)
"""
