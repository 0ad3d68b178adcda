"""The cancel-key index (`_cancel_keys`) in the SQLite store (migration 9) and in the
PostgreSQL store (migration 6): one table, keyed for the dispatcher's lookup (event name,
then paths, values, workflow), with a second index by run for removal, kept in step with the
runs' rows by triggers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any

from ._cancel_keys import CancelCandidate, batches
from ._postgres_part import PgPart, WithConnection

_FINISHED = "('SUCCEEDED', 'FAILED', 'CANCELLED')"

# The keys a run's row carries (its ``meta``: ``[metadata, tags]``, metadata entry
# ``wayline.cancel_keys``, a JSON list of [name, paths, vals]), as index rows.
_SQLITE_KEYS_OF_NEW = (
    "INSERT OR IGNORE INTO cancel_keys (name, paths, vals, workflow, run_id) "
    "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), "
    "new.workflow, new.run_id FROM json_each(json_extract(new.meta, '$[0].\"wayline.cancel_keys\"'));"
)
_SQLITE_HAS_KEYS = "new.meta IS NOT NULL AND json_type(new.meta, '$[0].\"wayline.cancel_keys\"') = 'text'"

#: The table, as SQLite's migration 9 creates it, and the triggers that keep it in step with
#: the runs: a run's keys are indexed in the transaction that creates it (or redrives it), and
#: removed in the one that finishes it (a purge removes what is left, `_purge`).
SQLITE_MIGRATION = (
    """CREATE TABLE cancel_keys (
        name     TEXT NOT NULL,
        paths    TEXT NOT NULL,
        vals     TEXT NOT NULL,
        workflow TEXT NOT NULL,
        run_id   TEXT NOT NULL,
        PRIMARY KEY (name, paths, vals, workflow, run_id)
    ) WITHOUT ROWID""",
    "CREATE INDEX cancel_keys_by_run ON cancel_keys (run_id)",
    f"CREATE TRIGGER runs_cancel_keys_insert AFTER INSERT ON runs WHEN {_SQLITE_HAS_KEYS} "
    f"AND new.status NOT IN {_FINISHED} BEGIN {_SQLITE_KEYS_OF_NEW} END",
    f"CREATE TRIGGER runs_cancel_keys_end AFTER UPDATE OF status ON runs WHEN new.status IN {_FINISHED} "
    f"AND old.status NOT IN {_FINISHED} BEGIN DELETE FROM cancel_keys WHERE run_id = new.run_id; END",
    f"CREATE TRIGGER runs_cancel_keys_again AFTER UPDATE OF status ON runs WHEN old.status IN {_FINISHED} "
    f"AND new.status NOT IN {_FINISHED} AND {_SQLITE_HAS_KEYS} BEGIN {_SQLITE_KEYS_OF_NEW} END",
)

#: The table, as PostgreSQL's migration 6 creates it, and its triggers (as SQLite's).
PG_MIGRATION = (
    """CREATE TABLE wayline.cancel_keys (
        name     text NOT NULL,
        paths    text NOT NULL,
        vals     text NOT NULL,
        workflow text NOT NULL,
        run_id   text NOT NULL,
        PRIMARY KEY (name, paths, vals, workflow, run_id)
    )""",
    "CREATE INDEX cancel_keys_by_run ON wayline.cancel_keys (run_id)",
    f"""CREATE FUNCTION wayline.index_cancel_keys() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.status IN {_FINISHED} THEN
            DELETE FROM wayline.cancel_keys WHERE run_id = NEW.run_id;
        ELSIF NEW.meta -> 0 ? 'wayline.cancel_keys' THEN
            INSERT INTO wayline.cancel_keys (name, paths, vals, workflow, run_id)
            SELECT k ->> 0, k ->> 1, k ->> 2, NEW.workflow, NEW.run_id
            FROM jsonb_array_elements((NEW.meta -> 0 ->> 'wayline.cancel_keys')::jsonb) k
            ON CONFLICT DO NOTHING;
        END IF;
        RETURN NULL;
    END $$""",
    "CREATE TRIGGER runs_cancel_keys_insert AFTER INSERT ON wayline.runs FOR EACH ROW "
    f"WHEN (NEW.meta IS NOT NULL AND NEW.status NOT IN {_FINISHED}) EXECUTE FUNCTION wayline.index_cancel_keys()",
    "CREATE TRIGGER runs_cancel_keys_update AFTER UPDATE OF status ON wayline.runs FOR EACH ROW "
    f"WHEN ((OLD.status IN {_FINISHED}) IS DISTINCT FROM (NEW.status IN {_FINISHED})) "
    "EXECUTE FUNCTION wayline.index_cancel_keys()",
)

Fetch = Callable[[str, Sequence[Any]], Awaitable[list[Any]]]


class SQLiteCancelKeys:
    """`CancelKeyStore` for `SQLiteStore`."""

    def __init__(self, fetch: Fetch) -> None:
        self._fetch = fetch

    async def cancel_targets(self, name: str, candidates: Collection[CancelCandidate]) -> list[str]:
        found: set[str] = set()
        for batch in batches(candidates):
            # One equality lookup on the whole primary key per candidate, OR-ed (each term
            # names the event too: then SQLite plans a union of key lookups, even on a
            # database never ANALYZEd, rather than a scan of every key of the name).
            terms = " OR ".join("(name = ? AND paths = ? AND vals = ? AND workflow = ?)" for _ in batch)
            params: list[Any] = []
            for c in batch:
                params += [name, c.paths, c.vals, c.workflow]
            rows = await self._fetch(f"SELECT run_id FROM cancel_keys WHERE {terms}", params)
            found.update(r[0] for r in rows)
        return sorted(found)


class PgCancelKeys(PgPart):
    """`CancelKeyStore` for `PostgresStore`, shared by every worker on the database."""

    def __init__(self, with_connection: WithConnection) -> None:
        super().__init__(with_connection)

    async def cancel_targets(self, name: str, candidates: Collection[CancelCandidate]) -> list[str]:
        found: set[str] = set()
        for batch in batches(candidates):
            rows = await self._fetch(
                "SELECT DISTINCT k.run_id FROM wayline.cancel_keys k "
                "JOIN unnest($2::text[], $3::text[], $4::text[]) AS c(paths, vals, workflow) "
                "ON k.paths = c.paths AND k.vals = c.vals AND k.workflow = c.workflow "
                "WHERE k.name = $1",
                name,
                [c.paths for c in batch],
                [c.vals for c in batch],
                [c.workflow for c in batch],
            )
            found.update(r[0] for r in rows)
        return sorted(found)
