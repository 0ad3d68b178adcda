"""Throttle and debounce in the SQLite store: ``throttle_queue``, ``throttle_pace`` and
``debounces`` (migration 10). Each change is one transaction on the writer thread."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from ._pacing import Debounced, DebouncePush, Throttled, ThrottlePosition, pace, push

T = TypeVar("T")

MIGRATION = (
    """CREATE TABLE throttle_queue (
        seq      INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id   TEXT NOT NULL UNIQUE,
        grp      TEXT NOT NULL,
        key      TEXT NOT NULL,
        priority INTEGER NOT NULL,
        lim      INTEGER NOT NULL,
        period   REAL NOT NULL,
        burst    INTEGER NOT NULL,
        passed   INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX throttle_queue_order ON throttle_queue (grp, key, passed, priority DESC, seq)",
    """CREATE TABLE throttle_pace (
        grp TEXT NOT NULL,
        key TEXT NOT NULL,
        tat REAL NOT NULL,
        PRIMARY KEY (grp, key)
    ) WITHOUT ROWID""",
    """CREATE TABLE debounces (
        grp      TEXT NOT NULL,
        key      TEXT NOT NULL,
        run_id   TEXT NOT NULL UNIQUE,
        first_at REAL NOT NULL,
        due_at   REAL NOT NULL,
        count    INTEGER NOT NULL,
        PRIMARY KEY (grp, key)
    ) WITHOUT ROWID""",
    "CREATE INDEX debounces_by_due ON debounces (due_at)",
)

_COLUMNS = "run_id, grp, key, first_at, due_at, count"

Fetch = Callable[[str, Sequence[Any]], Awaitable[list[Any]]]
Transact = Callable[[Callable[[sqlite3.Connection], T]], Awaitable[T]]


def _debounced(r: Any) -> Debounced:
    return Debounced(run_id=r[0], group=r[1], key=r[2], first_at=r[3], due_at=r[4], count=r[5])


class SQLitePacing:
    """`PacingStore` for `SQLiteStore`."""

    def __init__(self, fetch: Fetch, transact: Transact[Any]) -> None:
        self._fetch = fetch
        self._transact = transact

    async def throttle_enqueue(self, entry: Throttled) -> None:
        def apply(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR IGNORE INTO throttle_queue (run_id, grp, key, priority, lim, period, burst) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (entry.run_id, entry.group, entry.key, entry.priority, entry.limit, entry.period, entry.burst),
            )

        await self._transact(apply)

    async def throttle_admit(
        self, group: str, key: str, limit: int, period: float, burst: int, now: float
    ) -> tuple[list[str], float | None]:
        def apply(conn: sqlite3.Connection) -> tuple[list[str], float | None]:
            row = conn.execute("SELECT tat FROM throttle_pace WHERE grp = ? AND key = ?", (group, key)).fetchone()
            tat = None if row is None else float(row[0])
            admitted: list[str] = []
            nxt: float | None = None
            for (run_id,) in conn.execute(
                "SELECT run_id FROM throttle_queue WHERE grp = ? AND key = ? AND passed = 0 "
                "ORDER BY priority DESC, seq",
                (group, key),
            ).fetchall():
                allowed, at = pace(tat, now, limit, period, burst)
                if not allowed:
                    nxt = at
                    break
                tat = at
                conn.execute("UPDATE throttle_queue SET passed = 1 WHERE run_id = ?", (run_id,))
                admitted.append(run_id)
            if admitted:
                conn.execute(
                    "INSERT INTO throttle_pace (grp, key, tat) VALUES (?, ?, ?) "
                    "ON CONFLICT (grp, key) DO UPDATE SET tat = excluded.tat",
                    (group, key, tat),
                )
            return admitted, nxt

        result: tuple[list[str], float | None] = await self._transact(apply)
        return result

    async def throttle_queues(self) -> list[tuple[str, str]]:
        rows = await self._fetch("SELECT DISTINCT grp, key FROM throttle_queue WHERE passed = 0 ORDER BY grp, key", ())
        return [(r[0], r[1]) for r in rows]

    async def throttle_passed(self) -> list[str]:
        rows = await self._fetch("SELECT run_id FROM throttle_queue WHERE passed = 1 ORDER BY seq", ())
        return [r[0] for r in rows]

    async def throttle_done(self, run_id: str) -> None:
        def apply(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM throttle_queue WHERE run_id = ? AND passed = 1", (run_id,))

        await self._transact(apply)

    async def throttle_position(self, run_id: str) -> ThrottlePosition | None:
        rows = await self._fetch(
            "SELECT run_id, grp, key, priority, seq, lim, period, burst FROM throttle_queue "
            "WHERE run_id = ? AND passed = 0",
            (run_id,),
        )
        if not rows:
            return None
        r = rows[0]
        entry = Throttled(
            run_id=r[0], group=r[1], key=r[2], priority=r[3], seq=r[4], limit=r[5], period=r[6], burst=r[7]
        )
        ahead = await self._fetch(
            "SELECT COUNT(*) FROM throttle_queue WHERE grp = ? AND key = ? AND passed = 0 "
            "AND (priority > ? OR (priority = ? AND seq < ?))",
            (entry.group, entry.key, entry.priority, entry.priority, entry.seq),
        )
        tat = await self._fetch("SELECT tat FROM throttle_pace WHERE grp = ? AND key = ?", (entry.group, entry.key))
        return ThrottlePosition(entry=entry, ahead=ahead[0][0], tat=float(tat[0][0]) if tat else None)

    async def debounce(
        self, group: str, key: str, run_id: str, now: float, period: float, max_wait: float | None
    ) -> DebouncePush:
        def apply(conn: sqlite3.Connection) -> DebouncePush:
            row = conn.execute(f"SELECT {_COLUMNS} FROM debounces WHERE grp = ? AND key = ?", (group, key)).fetchone()
            out = push(None if row is None else _debounced(row), run_id, now, period, max_wait)
            if out.created:
                conn.execute("DELETE FROM debounces WHERE grp = ? AND key = ?", (group, key))
                conn.execute(
                    f"INSERT INTO debounces ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, 1)",
                    (run_id, group, key, now, out.due_at),
                )
            else:
                conn.execute(
                    "UPDATE debounces SET due_at = ?, count = count + 1 WHERE grp = ? AND key = ?",
                    (out.due_at, group, key),
                )
            return out

        result: DebouncePush = await self._transact(apply)
        return result

    async def take_due(self, now: float) -> list[str]:
        def apply(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute("SELECT run_id FROM debounces WHERE due_at <= ? ORDER BY due_at", (now,)).fetchall()
            conn.execute("DELETE FROM debounces WHERE due_at <= ?", (now,))
            return [r[0] for r in rows]

        result: list[str] = await self._transact(apply)
        return result

    async def next_due(self) -> float | None:
        rows = await self._fetch("SELECT MIN(due_at) FROM debounces", ())
        return None if not rows or rows[0][0] is None else float(rows[0][0])

    async def debounced(self, run_id: str) -> Debounced | None:
        rows = await self._fetch(f"SELECT {_COLUMNS} FROM debounces WHERE run_id = ?", (run_id,))
        return _debounced(rows[0]) if rows else None

    async def held(self) -> set[str]:
        rows = await self._fetch("SELECT run_id FROM throttle_queue UNION SELECT run_id FROM debounces", ())
        return {r[0] for r in rows}

    async def withdraw(self, run_id: str) -> bool:
        def apply(conn: sqlite3.Connection) -> bool:
            a = conn.execute("DELETE FROM throttle_queue WHERE run_id = ?", (run_id,)).rowcount
            b = conn.execute("DELETE FROM debounces WHERE run_id = ?", (run_id,)).rowcount
            return a + b > 0

        result: bool = await self._transact(apply)
        return result
