"""Flow control in the SQLite store: ``flow_queue`` and ``flow_slots`` (part of migration 8).

Admission and release are transactions of their own on the writer thread, so the count of
slots and the move from the queue are one atomic step: a limit cannot be overshot.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from ._flow import Position, QueuedRun

T = TypeVar("T")

MIGRATION = (
    """CREATE TABLE flow_queue (
        seq      INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id   TEXT NOT NULL UNIQUE,
        grp      TEXT NOT NULL,
        key      TEXT NOT NULL,
        priority INTEGER NOT NULL,
        lim      INTEGER NOT NULL
    )""",
    "CREATE INDEX flow_queue_order ON flow_queue (grp, key, priority DESC, seq)",
    """CREATE TABLE flow_slots (
        run_id TEXT PRIMARY KEY,
        grp    TEXT NOT NULL,
        key    TEXT NOT NULL
    ) WITHOUT ROWID""",
    "CREATE INDEX flow_slots_by_key ON flow_slots (grp, key)",
    """CREATE TABLE flow_starts (
        grp    TEXT NOT NULL,
        key    TEXT NOT NULL,
        ts     REAL NOT NULL,
        run_id TEXT NOT NULL UNIQUE
    )""",
    "CREATE INDEX flow_starts_by_key ON flow_starts (grp, key, ts)",
)

_HEAD = "SELECT run_id, lim FROM flow_queue WHERE grp = ? AND key = ? ORDER BY priority DESC, seq LIMIT 1"
_HELD = "SELECT COUNT(*) FROM flow_slots WHERE grp = ? AND key = ?"

Fetch = Callable[[str, Sequence[Any]], Awaitable[list[Any]]]
Transact = Callable[[Callable[[sqlite3.Connection], T]], Awaitable[T]]


class SQLiteFlow:
    """`FlowStore` for `SQLiteStore`."""

    def __init__(self, fetch: Fetch, transact: Transact[Any]) -> None:
        self._fetch = fetch
        self._transact = transact

    async def enqueue(self, entry: QueuedRun) -> None:
        def apply(conn: sqlite3.Connection) -> None:
            if conn.execute("SELECT 1 FROM flow_slots WHERE run_id = ?", (entry.run_id,)).fetchone():
                return
            conn.execute(
                "INSERT OR IGNORE INTO flow_queue (run_id, grp, key, priority, lim) VALUES (?, ?, ?, ?, ?)",
                (entry.run_id, entry.group, entry.key, entry.priority, entry.limit),
            )

        await self._transact(apply)

    async def admit(self, group: str, key: str) -> list[str]:
        def apply(conn: sqlite3.Connection) -> list[str]:
            admitted: list[str] = []
            held = conn.execute(_HELD, (group, key)).fetchone()[0]
            while True:
                head = conn.execute(_HEAD, (group, key)).fetchone()
                if head is None or held >= head[1]:
                    return admitted
                conn.execute("DELETE FROM flow_queue WHERE run_id = ?", (head[0],))
                conn.execute("INSERT INTO flow_slots (run_id, grp, key) VALUES (?, ?, ?)", (head[0], group, key))
                admitted.append(head[0])
                held += 1

        result: list[str] = await self._transact(apply)
        return result

    async def release(self, run_id: str) -> tuple[str, str] | None:
        def apply(conn: sqlite3.Connection) -> tuple[str, str] | None:
            for table in ("flow_slots", "flow_queue"):
                row = conn.execute(f"SELECT grp, key FROM {table} WHERE run_id = ?", (run_id,)).fetchone()
                if row is not None:
                    conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
                    return (row[0], row[1])
            return None

        result: tuple[str, str] | None = await self._transact(apply)
        return result

    async def withdraw(self, run_id: str) -> bool:
        def apply(conn: sqlite3.Connection) -> bool:
            return conn.execute("DELETE FROM flow_queue WHERE run_id = ?", (run_id,)).rowcount > 0

        result: bool = await self._transact(apply)
        return result

    async def slots(self) -> list[QueuedRun]:
        rows = await self._fetch("SELECT run_id, grp, key FROM flow_slots ORDER BY run_id", ())
        return [QueuedRun(run_id=r[0], group=r[1], key=r[2]) for r in rows]

    async def stalled(self) -> list[str]:
        rows = await self._fetch(
            "SELECT s.run_id FROM flow_slots s JOIN runs r ON r.run_id = s.run_id WHERE r.status = 'QUEUED' "
            "ORDER BY s.run_id",
            (),
        )
        return [r[0] for r in rows]

    async def take_rate(self, group: str, key: str, limit: int, period: float, now: float, run_id: str) -> float | None:
        def apply(conn: sqlite3.Connection) -> float | None:
            conn.execute("DELETE FROM flow_starts WHERE grp = ? AND key = ? AND ts <= ?", (group, key, now - period))
            if conn.execute("SELECT 1 FROM flow_starts WHERE run_id = ?", (run_id,)).fetchone():
                return None
            rows = conn.execute(
                "SELECT ts FROM flow_starts WHERE grp = ? AND key = ? ORDER BY ts DESC LIMIT ?", (group, key, limit)
            ).fetchall()
            if len(rows) >= limit:
                return float(rows[-1][0]) + period - now
            conn.execute(
                "INSERT INTO flow_starts (grp, key, ts, run_id) VALUES (?, ?, ?, ?)", (group, key, now, run_id)
            )
            return None

        result: float | None = await self._transact(apply)
        return result

    async def holders(self, group: str, key: str) -> list[str]:
        rows = await self._fetch(
            "SELECT run_id FROM flow_slots WHERE grp = ? AND key = ? ORDER BY run_id", (group, key)
        )
        return [r[0] for r in rows]

    async def queues(self) -> list[tuple[str, str]]:
        rows = await self._fetch("SELECT DISTINCT grp, key FROM flow_queue ORDER BY grp, key", ())
        return [(r[0], r[1]) for r in rows]

    async def position(self, run_id: str) -> Position | None:
        rows = await self._fetch(
            "SELECT run_id, grp, key, priority, lim, seq FROM flow_queue WHERE run_id = ?", (run_id,)
        )
        if not rows:
            return None
        r = rows[0]
        entry = QueuedRun(run_id=r[0], group=r[1], key=r[2], priority=r[3], limit=r[4], seq=r[5])
        ahead = await self._fetch(
            "SELECT COUNT(*) FROM flow_queue WHERE grp = ? AND key = ? "
            "AND (priority > ? OR (priority = ? AND seq < ?))",
            (entry.group, entry.key, entry.priority, entry.priority, entry.seq),
        )
        held = await self._fetch(_HELD, (entry.group, entry.key))
        return Position(entry=entry, ahead=ahead[0][0], running=held[0][0])
