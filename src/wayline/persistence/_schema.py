"""Schema of the SQLite store, as numbered migrations recorded in ``PRAGMA user_version``.

A migration is applied once, in order, inside one transaction with the version bump, so a
crash mid-migration leaves the previous version intact. Never edit a released migration:
add a new one.
"""

from __future__ import annotations

from ._cancel_keys_sql import SQLITE_MIGRATION as CANCEL_KEYS
from ._events_sqlite import MIGRATION as EVENTS
from ._flow_sqlite import MIGRATION as FLOW
from ._pacing_sqlite import MIGRATION as PACING
from ._schedules_sqlite import MIGRATION as SCHEDULES

# The index rows of a run's ``meta`` (``[metadata, tags]``): its scalar metadata entries
# (booleans as 0/1, as json_each gives them) except the runtime's ``wayline.`` keys, and its tags
# under the empty key.
_INDEX_META = (
    "INSERT OR IGNORE INTO run_metadata (key, value, created_at, run_id) "
    "SELECT key, value, new.created_at, new.run_id FROM json_each(new.meta, '$[0]') "
    "WHERE type IN ('text', 'integer', 'real', 'true', 'false') AND key <> '' AND substr(key, 1, 8) <> 'wayline.'; "
    "INSERT OR IGNORE INTO run_metadata (key, value, created_at, run_id) "
    "SELECT '', value, new.created_at, new.run_id FROM json_each(new.meta, '$[1]') WHERE type = 'text';"
)

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: runs (one row per run: indexed columns + the encoded snapshot) and history
    # (one row per checkpoint holding that checkpoint's encoded events).
    (
        """CREATE TABLE runs (
            run_id     TEXT PRIMARY KEY,
            workflow   TEXT NOT NULL,
            status     TEXT NOT NULL,
            created_at REAL NOT NULL,
            wake_at    REAL,
            snapshot   BLOB NOT NULL
        )""",
        "CREATE INDEX runs_by_status ON runs (status, workflow, created_at)",
        "CREATE INDEX runs_by_wake ON runs (wake_at) WHERE wake_at IS NOT NULL",
        """CREATE TABLE history (
            run_id TEXT NOT NULL,
            seq    INTEGER NOT NULL,
            events BLOB NOT NULL,
            PRIMARY KEY (run_id, seq)
        ) WITHOUT ROWID""",
    ),
    # 2: the durable inbox: signals and cancel requests committed before delivery, deleted
    # by the checkpoint that consumes them (so consumption is exactly once).
    (
        """CREATE TABLE inbox (
            seq     INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id  TEXT NOT NULL,
            message BLOB NOT NULL
        )""",
        "CREATE INDEX inbox_by_run ON inbox (run_id, seq)",
    ),
    # 3: listings in creation order (`list_runs`, `wayline runs list`) read the few runs they
    # return instead of sorting every run. Only creates write it: checkpoints never change
    # created_at.
    ("CREATE INDEX runs_by_created ON runs (created_at, run_id)",),
    # 4: every listing `wayline runs list` offers (status, workflow, since, newest first, a
    # limit) is an index range scan that reads only the runs it returns: each filter's
    # equality columns, then the listing order (created_at, run_id). runs_by_status lacked
    # run_id and served no status-only order, so a status listing sorted every run of that
    # status (17 ms at 50,000 runs). Checkpoints rewrite the entries of the two status
    # indexes (status changes); runs_by_workflow, like runs_by_created, only creates write.
    (
        "DROP INDEX runs_by_status",
        "CREATE INDEX runs_by_status ON runs (status, created_at, run_id)",
        "CREATE INDEX runs_by_status_workflow ON runs (status, workflow, created_at, run_id)",
        "CREATE INDEX runs_by_workflow ON runs (workflow, created_at, run_id)",
    ),
    # 5: schedules (`_schedules_sqlite`): one row per schedule, its next due time indexed.
    SCHEDULES,
    # 6: search by metadata and tags (`_search`): the row's ``meta`` column holds the run's
    # metadata and tags as JSON, and triggers keep the run_metadata index in step with it, so a
    # checkpoint that leaves them unchanged writes no index row. The index carries created_at,
    # so a filtered listing reads it in listing order and stops at its limit. Runs written
    # before this migration are indexed at their next checkpoint.
    (
        "ALTER TABLE runs ADD COLUMN meta TEXT",
        """CREATE TABLE run_metadata (
            key        TEXT NOT NULL,
            value      NOT NULL,
            created_at REAL NOT NULL,
            run_id     TEXT NOT NULL,
            PRIMARY KEY (key, value, created_at, run_id)
        ) WITHOUT ROWID""",
        "CREATE INDEX run_metadata_by_run ON run_metadata (run_id)",
        f"CREATE TRIGGER runs_meta_insert AFTER INSERT ON runs WHEN new.meta IS NOT NULL BEGIN {_INDEX_META} END",
        "CREATE TRIGGER runs_meta_update AFTER UPDATE OF meta ON runs WHEN old.meta IS NOT new.meta BEGIN "
        f"DELETE FROM run_metadata WHERE run_id = old.run_id; {_INDEX_META} END",
        "CREATE TRIGGER runs_meta_delete AFTER DELETE ON runs WHEN old.meta IS NOT NULL BEGIN "
        "DELETE FROM run_metadata WHERE run_id = old.run_id; END",
    ),
    # 7: large values out of the snapshot (`_blobs`): each stored once by the SHA-256 of its
    # encoding; run_blobs says which runs refer to which blob, so a purge deletes the blobs
    # that no run refers to any more.
    (
        """CREATE TABLE blobs (
            digest TEXT PRIMARY KEY,
            size   INTEGER NOT NULL,
            data   BLOB NOT NULL
        )""",
        """CREATE TABLE run_blobs (
            run_id TEXT NOT NULL,
            digest TEXT NOT NULL,
            PRIMARY KEY (run_id, digest)
        ) WITHOUT ROWID""",
        "CREATE INDEX run_blobs_by_digest ON run_blobs (digest)",
    ),
    # 8: events (`_events`): accepted events, the ids that deduplicate them, and the index
    # of runs waiting for one; and flow control (`_flow`): queued runs and the slots of
    # concurrency limits.
    (*EVENTS, *FLOW),
    # 9: the runs an event may cancel (`_cancel_keys`: ``@workflow(cancel_on=...)``).
    CANCEL_KEYS,
    # 10: throttles and debounces (`_pacing`): runs held back by a pace or a quiet period.
    PACING,
)

SCHEMA_VERSION = len(MIGRATIONS)
REQUIRED_TABLES = frozenset(
    {
        "runs",
        "history",
        "inbox",
        "schedules",
        "run_metadata",
        "blobs",
        "run_blobs",
        "events",
        "event_ids",
        "event_waits",
        "cancel_keys",
    }
)
