"""Events in the SQLite store: the ``events``, ``event_ids`` and ``event_waits`` tables
(migration 8) and their statements.

Reads go through the store's reader connection; an append is one transaction of its own on
the writer thread, between two group commits (`SQLiteStore.transact`), so claiming an id and
storing the event commit together.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any, TypeVar

from ._crypto import Sealer, encode_message
from ._events import Accepted, EventRecord, NewEvent, decode_body, record, seal_body, values_at, wake_message
from ._sqlite_sql import APPEND_INBOX

T = TypeVar("T")

#: The tables, as migration 8 creates them.
MIGRATION = (
    """CREATE TABLE events (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        name        TEXT NOT NULL,
        event_id    TEXT NOT NULL,
        ts          REAL NOT NULL,
        accepted_at REAL NOT NULL,
        body        BLOB NOT NULL,
        dispatched  INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX events_by_name ON events (name, seq)",
    "CREATE INDEX events_undispatched ON events (seq) WHERE dispatched = 0",
    """CREATE TABLE event_ids (
        event_id    TEXT PRIMARY KEY,
        seq         INTEGER NOT NULL,
        accepted_at REAL NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE event_waits (
        name   TEXT NOT NULL,
        paths  TEXT NOT NULL,
        vals   TEXT NOT NULL,
        run_id TEXT NOT NULL,
        PRIMARY KEY (name, paths, vals, run_id)
    ) WITHOUT ROWID""",
    "CREATE INDEX event_waits_by_run ON event_waits (run_id)",
)

_COLUMNS = "seq, name, event_id, ts, accepted_at, body, dispatched"

Fetch = Callable[[str, Sequence[Any]], Awaitable[list[Any]]]
Transact = Callable[[Callable[[sqlite3.Connection], T]], Awaitable[T]]


def _marks(items: Collection[Any]) -> str:
    return ", ".join("?" * len(items))


class SQLiteEvents:
    """`EventStore` for `SQLiteStore`."""

    def __init__(self, fetch: Fetch, transact: Transact[Any], sealer: Callable[[], Sealer]) -> None:
        self._fetch = fetch
        self._transact = transact
        self._sealer = sealer  # the store's, which the runtime sets after the store is made

    async def _records(self, sql: str, params: Sequence[Any]) -> list[EventRecord]:
        sealer = self._sealer()
        return [record(sealer, *row) for row in await self._fetch(sql, params)]

    async def append(self, events: Sequence[NewEvent], *, now: float, window: float) -> list[Accepted]:
        sealer = self._sealer()
        # Encrypted before the transaction: a Secret without a key stores nothing.
        bodies = [seal_body(sealer, ev) for ev in events]

        def apply(conn: sqlite3.Connection) -> list[Accepted]:
            out = []
            for ev, body in zip(events, bodies, strict=True):
                row = conn.execute(
                    "SELECT seq, accepted_at FROM event_ids WHERE event_id = ?", (ev.event_id,)
                ).fetchone()
                if row is not None and row[1] >= now - window:
                    out.append(Accepted(row[0], True))
                    continue
                cursor = conn.execute(
                    "INSERT INTO events (name, event_id, ts, accepted_at, body, dispatched) VALUES (?, ?, ?, ?, ?, ?)",
                    (ev.name, ev.event_id, ev.ts, now, body, int(ev.settled)),
                )
                seq = cursor.lastrowid
                assert seq is not None
                conn.execute(
                    "INSERT OR REPLACE INTO event_ids (event_id, seq, accepted_at) VALUES (?, ?, ?)",
                    (ev.event_id, seq, now),
                )
                out.append(Accepted(seq, woken=_wake(conn, sealer, seq, ev, now)))
            return out

        result: list[Accepted] = await self._transact(apply)
        return result

    async def get(self, seq: int) -> EventRecord | None:
        found = await self._records(f"SELECT {_COLUMNS} FROM events WHERE seq = ?", (seq,))
        return found[0] if found else None

    async def listing(
        self, *, name: str | None = None, after: int = 0, limit: int = 100, newest_first: bool = False
    ) -> list[EventRecord]:
        order = "DESC" if newest_first else "ASC"
        where, params = ("seq > ?", [after]) if name is None else ("name = ? AND seq > ?", [name, after])
        return await self._records(
            f"SELECT {_COLUMNS} FROM events WHERE {where} ORDER BY seq {order} LIMIT ?", (*params, limit)
        )

    async def undispatched(self, limit: int = 100, after: int = 0) -> list[EventRecord]:
        sealer = self._sealer()
        rows = await self._fetch(
            f"SELECT {_COLUMNS} FROM events WHERE dispatched = 0 AND seq > ? ORDER BY seq LIMIT ?", (after, limit)
        )
        return [record(sealer, *row, tolerant=True) for row in rows]

    async def mark_dispatched(self, seqs: Collection[int]) -> None:
        if not seqs:
            return
        items = list(seqs)

        def apply(conn: sqlite3.Connection) -> None:
            conn.execute(f"UPDATE events SET dispatched = 1 WHERE seq IN ({_marks(items)})", items)

        await self._transact(apply)

    async def find(self, name: str, *, since: float, after: int = 0, limit: int = 100) -> list[EventRecord]:
        return await self._records(
            f"SELECT {_COLUMNS} FROM events WHERE name = ? AND seq > ? AND accepted_at >= ? ORDER BY seq LIMIT ?",
            (name, after, since, limit),
        )

    async def add_wait(self, run_id: str, name: str, paths: str, values: str) -> None:
        def apply(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR IGNORE INTO event_waits (name, paths, vals, run_id) VALUES (?, ?, ?, ?)",
                (name, paths, values, run_id),
            )

        await self._transact(apply)

    async def remove_wait(self, run_id: str, name: str, paths: str, values: str) -> None:
        def apply(conn: sqlite3.Connection) -> None:
            conn.execute(
                "DELETE FROM event_waits WHERE name = ? AND paths = ? AND vals = ? AND run_id = ?",
                (name, paths, values, run_id),
            )

        await self._transact(apply)

    async def waiters(self, name: str, data: Any) -> list[str]:
        found: list[str] = []
        for (path_set,) in await self._fetch(
            "SELECT DISTINCT paths FROM event_waits WHERE name = ? ORDER BY paths", (name,)
        ):
            values = values_at(data, path_set)
            if values is None:
                continue
            rows = await self._fetch(
                "SELECT run_id FROM event_waits WHERE name = ? AND paths = ? AND vals = ? ORDER BY run_id",
                (name, path_set, values),
            )
            found += [r[0] for r in rows]
        return found

    async def take_waiters(self, name: str, data: Any) -> list[str]:
        def apply(conn: sqlite3.Connection) -> list[str]:
            return _take(conn, name, data)

        result: list[str] = await self._transact(apply)
        return result

    async def remove_waits(self, run_ids: Collection[str]) -> None:
        if not run_ids:
            return
        items = list(run_ids)

        def apply(conn: sqlite3.Connection) -> None:
            conn.execute(f"DELETE FROM event_waits WHERE run_id IN ({_marks(items)})", items)

        await self._transact(apply)


def _take(conn: sqlite3.Connection, name: str, data: Any) -> list[str]:
    """The runs waiting for an event ``name`` with ``data``, their index rows deleted."""
    found: list[str] = []
    for (path_set,) in conn.execute("SELECT DISTINCT paths FROM event_waits WHERE name = ?", (name,)).fetchall():
        values = values_at(data, path_set)
        if values is None:
            continue
        rows = conn.execute(
            "DELETE FROM event_waits WHERE name = ? AND paths = ? AND vals = ? RETURNING run_id",
            (name, path_set, values),
        ).fetchall()
        found += sorted(r[0] for r in rows)
    return found


def _wake(conn: sqlite3.Connection, sealer: Sealer, seq: int, ev: NewEvent, now: float) -> tuple[tuple[str, int], ...]:
    """Commit a wake-up carrying the event to the inbox of each run waiting for it, in the
    transaction that accepts it (one commit for both); sealed as any message to that run is
    (its Secrets, or with ``encrypt_payloads`` its payload, bound to the run)."""
    data, _ = decode_body(ev.body)
    runs = _take(conn, ev.name, data)
    if not runs:
        return ()
    wake = wake_message(seq, ev, now)
    woken = []
    for run_id in runs:
        message = encode_message(sealer, wake, run_id)
        cursor = conn.execute(APPEND_INBOX, (run_id, message, run_id))
        if cursor.rowcount == 1 and cursor.lastrowid is not None:
            woken.append((run_id, cursor.lastrowid))
    return tuple(woken)
