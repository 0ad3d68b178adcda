"""Schema of the PostgreSQL store: numbered migrations in the ``wayline`` schema.

Everything lives in its own PostgreSQL schema, ``wayline``, so the tables can share a
database with the application's. The version is the one row of ``wayline.meta``. Migrations
run in one transaction under an advisory lock, so workers starting together migrate once and a
crash mid-migration leaves the previous version intact. Never edit a released migration: add
one. The stored values (snapshots, events, messages) are the same msgspec bytes as SQLite's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._errors import SchemaVersionError
from ._cancel_keys_sql import PG_MIGRATION as CANCEL_KEYS
from ._event_listens_postgres import MIGRATION as EVENT_LISTENS
from ._events_postgres import MIGRATION as EVENTS
from ._flow_postgres import MIGRATION as FLOW
from ._pacing_postgres import MIGRATION as PACING
from ._schedules_postgres import MIGRATION as SCHEDULES

if TYPE_CHECKING:
    import asyncpg

#: Key of the advisory lock that serializes migrations (any constant unlikely to clash).
MIGRATION_LOCK = 0x5761_796C_696E_6501

PG_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: the SQLite tables (runs, history, inbox) plus what several workers need: a run's owner
    # and fencing counter, the workers and their leases, and the group commit's batch markers.
    (
        """CREATE TABLE wayline.runs (
            run_id     text PRIMARY KEY,
            workflow   text NOT NULL,
            status     text NOT NULL,
            created_at double precision NOT NULL,
            wake_at    double precision,
            snapshot   bytea NOT NULL,
            owner      text,
            fence      bigint NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX runs_by_status ON wayline.runs (status, workflow, created_at)",
        "CREATE INDEX runs_by_wake ON wayline.runs (wake_at) WHERE wake_at IS NOT NULL",
        "CREATE INDEX runs_by_created ON wayline.runs (created_at, run_id)",
        "CREATE INDEX runs_by_owner ON wayline.runs (owner) WHERE owner IS NOT NULL",
        """CREATE TABLE wayline.history (
            run_id text NOT NULL,
            seq    integer NOT NULL,
            events bytea NOT NULL,
            PRIMARY KEY (run_id, seq)
        )""",
        """CREATE TABLE wayline.inbox (
            seq     bigserial PRIMARY KEY,
            run_id  text NOT NULL,
            message bytea NOT NULL
        )""",
        "CREATE INDEX inbox_by_run ON wayline.inbox (run_id, seq)",
        """CREATE TABLE wayline.workers (
            id           text PRIMARY KEY,
            host         text NOT NULL,
            pid          integer NOT NULL,
            exclusive    boolean NOT NULL DEFAULT false,
            tag          text NOT NULL DEFAULT '',
            started_at   timestamptz NOT NULL DEFAULT now(),
            heartbeat_at timestamptz NOT NULL DEFAULT now(),
            lease_until  timestamptz NOT NULL
        )""",
        # One row per committed group-commit batch, kept until the writer's next batch commits:
        # a batch whose acknowledgement was lost is looked up here before it is retried.
        """CREATE TABLE wayline.batches (
            writer   text NOT NULL,
            n        bigint NOT NULL,
            at       timestamptz NOT NULL DEFAULT now(),
            created  text[] NOT NULL,
            ok       text[] NOT NULL,
            app_runs text[] NOT NULL,
            app_seqs bigint[] NOT NULL,
            PRIMARY KEY (writer, n)
        )""",
    ),
    # 2: schedules (`_schedules_postgres`): one row per schedule, its next due time indexed.
    SCHEDULES,
    # 3: search by metadata and tags (`_search`), as SQLite's migration 6: the row's ``meta``
    # (``[metadata, tags]``) and a trigger that keeps the run_metadata index in step with it
    # when it changes. Booleans are indexed as 0/1, as SQLite's json_each gives them.
    (
        "ALTER TABLE wayline.runs ADD COLUMN meta jsonb",
        """CREATE TABLE wayline.run_metadata (
            key        text NOT NULL,
            value      jsonb NOT NULL,
            created_at double precision NOT NULL,
            run_id     text NOT NULL,
            PRIMARY KEY (key, value, created_at, run_id)
        )""",
        "CREATE INDEX run_metadata_by_run ON wayline.run_metadata (run_id)",
        """CREATE FUNCTION wayline.index_run_meta() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP <> 'INSERT' THEN
                DELETE FROM wayline.run_metadata WHERE run_id = OLD.run_id;
            END IF;
            IF TG_OP <> 'DELETE' AND NEW.meta IS NOT NULL THEN
                INSERT INTO wayline.run_metadata (key, value, created_at, run_id)
                SELECT e.key,
                       CASE jsonb_typeof(e.value) WHEN 'boolean' THEN to_jsonb((e.value #>> '{}')::boolean::int)
                            ELSE e.value END,
                       NEW.created_at, NEW.run_id
                FROM jsonb_each(NEW.meta -> 0) e
                WHERE jsonb_typeof(e.value) IN ('string', 'number', 'boolean') AND e.key <> ''
                  AND left(e.key, 8) <> 'wayline.'
                UNION
                SELECT '', t.value, NEW.created_at, NEW.run_id FROM jsonb_array_elements(NEW.meta -> 1) t
                WHERE jsonb_typeof(t.value) = 'string'
                ON CONFLICT DO NOTHING;
            END IF;
            RETURN NULL;
        END $$""",
        "CREATE TRIGGER runs_meta_insert AFTER INSERT ON wayline.runs FOR EACH ROW "
        "WHEN (NEW.meta IS NOT NULL) EXECUTE FUNCTION wayline.index_run_meta()",
        "CREATE TRIGGER runs_meta_update AFTER UPDATE OF meta ON wayline.runs FOR EACH ROW "
        "WHEN (OLD.meta IS DISTINCT FROM NEW.meta) EXECUTE FUNCTION wayline.index_run_meta()",
        "CREATE TRIGGER runs_meta_delete AFTER DELETE ON wayline.runs FOR EACH ROW "
        "WHEN (OLD.meta IS NOT NULL) EXECUTE FUNCTION wayline.index_run_meta()",
    ),
    # 4: large values out of the snapshot (`_blobs`), as SQLite's migration 7.
    (
        """CREATE TABLE wayline.blobs (
            digest text PRIMARY KEY,
            size   integer NOT NULL,
            data   bytea NOT NULL
        )""",
        """CREATE TABLE wayline.run_blobs (
            run_id text NOT NULL,
            digest text NOT NULL,
            PRIMARY KEY (run_id, digest)
        )""",
        "CREATE INDEX run_blobs_by_digest ON wayline.run_blobs (digest)",
    ),
    # 5: events (`_events`) and flow control (`_flow`), as SQLite's migration 8.
    (*EVENTS, *FLOW),
    # 6: the runs an event may cancel (`_cancel_keys`), as SQLite's migration 9.
    CANCEL_KEYS,
    # 7: throttles and debounces (`_pacing`), as SQLite's migration 10.
    PACING,
    # 8: what each worker's workflows listen to, and which workflows an event was dispatched
    # to (`_event_listens_postgres`): events reach every worker's triggers.
    EVENT_LISTENS,
)

PG_SCHEMA_VERSION = len(PG_MIGRATIONS)


async def migrate(conn: asyncpg.Connection, url: str) -> int:
    """Create or upgrade the schema; returns the version found before.

    Raises:
        SchemaVersionError: the database was written by a newer wayline.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute("CREATE SCHEMA IF NOT EXISTS wayline")
        await conn.execute("CREATE TABLE IF NOT EXISTS wayline.meta (version integer NOT NULL)")
        found = await conn.fetchval("SELECT version FROM wayline.meta")
        if found is None:
            await conn.execute("INSERT INTO wayline.meta (version) VALUES (0)")
            found = 0
        if found > PG_SCHEMA_VERSION:
            raise SchemaVersionError(url, found, PG_SCHEMA_VERSION)
        for statements in PG_MIGRATIONS[found:]:
            for sql in statements:
                await conn.execute(sql)
        if found < PG_SCHEMA_VERSION:
            await conn.execute("UPDATE wayline.meta SET version = $1", PG_SCHEMA_VERSION)
    return int(found)
