"""Schema of the SQLite store, as numbered migrations recorded in ``PRAGMA user_version``.

A migration is applied once, in order, inside one transaction with the version bump, so a
crash mid-migration leaves the previous version intact. Never edit a released migration:
add a new one.
"""

from __future__ import annotations

from ._schedules_sqlite import MIGRATION as SCHEDULES

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
)

SCHEMA_VERSION = len(MIGRATIONS)
REQUIRED_TABLES = frozenset({"runs", "history", "inbox", "schedules"})
