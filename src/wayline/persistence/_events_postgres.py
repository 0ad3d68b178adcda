"""Events in the PostgreSQL store: ``wayline.events``, ``event_ids`` and ``event_waits``
(migration 5), shared by every worker on the database.

An append is one transaction; each event id is claimed under a transaction-scoped advisory
lock on its hash, so two workers accepting the same id at the same moment store it once.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any

from ._crypto import Sealer
from ._event_listens_postgres import MARK
from ._events import Accepted, EventRecord, NewEvent, record, seal_body, values_at
from ._postgres_part import PgPart, WithConnection

if TYPE_CHECKING:
    import asyncpg

#: The tables, as migration 5 of the PostgreSQL schema creates them.
MIGRATION = (
    """CREATE TABLE wayline.events (
        seq         bigserial PRIMARY KEY,
        name        text NOT NULL,
        event_id    text NOT NULL,
        ts          double precision NOT NULL,
        accepted_at double precision NOT NULL,
        body        bytea NOT NULL,
        dispatched  boolean NOT NULL DEFAULT false
    )""",
    "CREATE INDEX events_by_name ON wayline.events (name, seq)",
    "CREATE INDEX events_undispatched ON wayline.events (seq) WHERE NOT dispatched",
    """CREATE TABLE wayline.event_ids (
        event_id    text PRIMARY KEY,
        seq         bigint NOT NULL,
        accepted_at double precision NOT NULL
    )""",
    """CREATE TABLE wayline.event_waits (
        name   text NOT NULL,
        paths  text NOT NULL,
        vals   text NOT NULL,
        run_id text NOT NULL,
        PRIMARY KEY (name, paths, vals, run_id)
    )""",
    "CREATE INDEX event_waits_by_run ON wayline.event_waits (run_id)",
)

_COLUMNS = "seq, name, event_id, ts, accepted_at, body, dispatched"

# The runs of one (name, path set, values) entry of the wait index: looked at, or taken
# (deleted, so that each wait is answered by one wake-up).
_WAITING = "SELECT run_id FROM wayline.event_waits WHERE name = $1 AND paths = $2 AND vals = $3"
_TAKE = "DELETE FROM wayline.event_waits WHERE name = $1 AND paths = $2 AND vals = $3 RETURNING run_id"


class PgEvents(PgPart):
    """`EventStore` for `PostgresStore`."""

    def __init__(
        self, with_connection: WithConnection, sealer: Callable[[], Sealer], listens: Callable[[], str] = lambda: "{}"
    ) -> None:
        super().__init__(with_connection)
        self._sealer = sealer  # the store's, which the runtime sets after the store is made
        self._listens = listens  # this worker's, as registered (JSON; see `_event_listens_postgres`)

    async def _records(self, sql: str, *args: Any) -> list[EventRecord]:
        sealer = self._sealer()
        return [record(sealer, *row) for row in await self._fetch(sql, *args)]

    async def append(self, events: Sequence[NewEvent], *, now: float, window: float) -> list[Accepted]:
        # Encrypted before the transaction: a Secret without a key stores nothing.
        sealer = self._sealer()
        bodies = [seal_body(sealer, ev) for ev in events]

        async def go(conn: asyncpg.Connection) -> list[Accepted]:
            out = []
            async with conn.transaction():
                for ev, body in zip(events, bodies, strict=True):
                    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", ev.event_id)
                    row = await conn.fetchrow(
                        "SELECT seq, accepted_at FROM wayline.event_ids WHERE event_id = $1", ev.event_id
                    )
                    if row is not None and row[1] >= now - window:
                        out.append(Accepted(int(row[0]), True))
                        continue
                    # Not settled here: the runtime wakes its waiters after the commit, then
                    # marks it dispatched (the inbox has its own ordering lock on PostgreSQL).
                    seq = await conn.fetchval(
                        "INSERT INTO wayline.events (name, event_id, ts, accepted_at, body) "
                        "VALUES ($1, $2, $3, $4, $5) RETURNING seq",
                        ev.name,
                        ev.event_id,
                        ev.ts,
                        now,
                        body,
                    )
                    await conn.execute(
                        "INSERT INTO wayline.event_ids (event_id, seq, accepted_at) VALUES ($1, $2, $3) "
                        "ON CONFLICT (event_id) DO UPDATE SET seq = EXCLUDED.seq, accepted_at = EXCLUDED.accepted_at",
                        ev.event_id,
                        seq,
                        now,
                    )
                    out.append(Accepted(int(seq)))  # woken None: the runtime wakes them
            return out

        result: list[Accepted] = await self._with(go)
        return result

    async def get(self, seq: int) -> EventRecord | None:
        found = await self._records(f"SELECT {_COLUMNS} FROM wayline.events WHERE seq = $1", seq)
        return found[0] if found else None

    async def listing(
        self, *, name: str | None = None, after: int = 0, limit: int = 100, newest_first: bool = False
    ) -> list[EventRecord]:
        order = "DESC" if newest_first else "ASC"
        return await self._records(
            f"SELECT {_COLUMNS} FROM wayline.events WHERE ($1::text IS NULL OR name = $1) AND seq > $2 "
            f"ORDER BY seq {order} LIMIT $3",
            name,
            after,
            limit,
        )

    async def undispatched(self, limit: int = 100, after: int = 0) -> list[EventRecord]:
        sealer = self._sealer()
        rows = await self._fetch(
            f"SELECT {_COLUMNS} FROM wayline.events WHERE NOT dispatched AND seq > $1 ORDER BY seq LIMIT $2",
            after,
            limit,
        )
        return [record(sealer, *row, tolerant=True) for row in rows]

    async def mark_dispatched(self, seqs: Collection[int]) -> None:
        # Only the events no other live worker still has to dispatch (`_event_listens_postgres`).
        if seqs:
            await self._fetch(MARK, list(seqs), self._listens())

    async def find(self, name: str, *, since: float, after: int = 0, limit: int = 100) -> list[EventRecord]:
        return await self._records(
            f"SELECT {_COLUMNS} FROM wayline.events WHERE name = $1 AND seq > $2 AND accepted_at >= $3 "
            "ORDER BY seq LIMIT $4",
            name,
            after,
            since,
            limit,
        )

    async def add_wait(self, run_id: str, name: str, paths: str, values: str) -> None:
        await self._fetch(
            "INSERT INTO wayline.event_waits (name, paths, vals, run_id) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT DO NOTHING",
            name,
            paths,
            values,
            run_id,
        )

    async def remove_wait(self, run_id: str, name: str, paths: str, values: str) -> None:
        await self._fetch(
            "DELETE FROM wayline.event_waits WHERE name = $1 AND paths = $2 AND vals = $3 AND run_id = $4",
            name,
            paths,
            values,
            run_id,
        )

    async def waiters(self, name: str, data: Any) -> list[str]:
        return await self._matching(_WAITING, name, data)

    async def take_waiters(self, name: str, data: Any) -> list[str]:
        return await self._matching(_TAKE, name, data)

    async def _matching(self, sql: str, name: str, data: Any) -> list[str]:
        """The runs ``sql`` returns for each path set waited on for ``name`` whose values in
        ``data`` are there: path sets in order, each one's runs sorted by id (in code, as the
        other stores sort them: a DELETE's RETURNING has no order)."""
        found: list[str] = []
        for (path_set,) in await self._fetch(
            "SELECT DISTINCT paths FROM wayline.event_waits WHERE name = $1 ORDER BY paths", name
        ):
            values = values_at(data, path_set)
            if values is not None:
                found += sorted(r[0] for r in await self._fetch(sql, name, path_set, values))
        return found

    async def remove_waits(self, run_ids: Collection[str]) -> None:
        if run_ids:
            await self._fetch("DELETE FROM wayline.event_waits WHERE run_id = ANY($1::text[])", list(run_ids))
