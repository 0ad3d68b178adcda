"""Schedules in the SQLite store: the ``schedules`` table (migration 5) and its statements.

Reads go through the store's reader connection; writes are transactions of their own on the
store's writer thread, between two group commits (`SQLiteStore.transact`), so they never
contend with checkpoints for SQLite's write lock.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any, TypeVar

import msgspec

from .._errors import DatabaseCorruptError
from ._crypto import Sealer
from ._schedules import ScheduleRecord, ScheduleWrite, decode_schedule, encode_schedule

T = TypeVar("T")

#: The table, as migration 5 creates it. ``due_at`` is indexed for the timer that wakes a
#: runtime for its next fire; the record holds everything else.
MIGRATION = (
    """CREATE TABLE schedules (
        schedule_id TEXT PRIMARY KEY,
        workflow    TEXT NOT NULL,
        revision    INTEGER NOT NULL,
        due_at      REAL,
        record      BLOB NOT NULL
    )""",
    "CREATE INDEX schedules_by_due ON schedules (due_at) WHERE due_at IS NOT NULL",
)

_INSERT = (
    "INSERT INTO schedules (schedule_id, workflow, revision, due_at, record) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (schedule_id) DO NOTHING"
)
_UPDATE = (
    "UPDATE schedules SET workflow = ?, revision = ?, due_at = ?, record = ? WHERE schedule_id = ? AND revision = ?"
)

Fetch = Callable[[str, Sequence[Any]], Awaitable[list[Any]]]
Transact = Callable[[Callable[[sqlite3.Connection], T]], Awaitable[T]]


def _marks(items: Collection[str]) -> str:
    return ", ".join("?" * len(items))


class SQLiteSchedules:
    """`ScheduleStore` for `SQLiteStore`.

    Args:
        fetch: runs a query on the store's reader connection.
        transact: runs a function in one write transaction on the store's writer thread.
        path: the database, for errors.
    """

    def __init__(self, fetch: Fetch, transact: Transact[Any], path: str, sealer: Callable[[], Sealer]) -> None:
        self._fetch = fetch
        self._sealer = sealer  # the store's, which the runtime sets after the store is made
        self._transact = transact
        self._path = path

    def _decode(self, schedule_id: str, data: bytes) -> ScheduleRecord:
        try:
            return decode_schedule(self._sealer(), data)
        except msgspec.DecodeError as exc:
            raise DatabaseCorruptError(self._path, f"schedule {schedule_id!r} cannot be decoded: {exc}") from exc

    async def get(self, schedule_id: str) -> ScheduleRecord | None:
        rows = await self._fetch("SELECT record FROM schedules WHERE schedule_id = ?", (schedule_id,))
        return self._decode(schedule_id, rows[0][0]) if rows else None

    async def all(self) -> list[ScheduleRecord]:
        rows = await self._fetch("SELECT schedule_id, record FROM schedules ORDER BY schedule_id", ())
        return [self._decode(sid, data) for sid, data in rows]

    async def due(self, until: float, workflows: Collection[str], limit: int = 1000) -> list[ScheduleRecord]:
        if not workflows:
            return []
        rows = await self._fetch(
            "SELECT schedule_id, record FROM schedules WHERE due_at IS NOT NULL AND due_at <= ? "
            f"AND workflow IN ({_marks(workflows)}) ORDER BY due_at, schedule_id LIMIT ?",
            (until, *workflows, limit),
        )
        return [self._decode(sid, data) for sid, data in rows]

    async def next_due(self, workflows: Collection[str]) -> float | None:
        if not workflows:
            return None
        rows = await self._fetch(
            f"SELECT MIN(due_at) FROM schedules WHERE due_at IS NOT NULL AND workflow IN ({_marks(workflows)})",
            tuple(workflows),
        )
        return rows[0][0] if rows else None

    async def put(self, writes: Sequence[ScheduleWrite]) -> list[bool]:
        rows = [(rec, expected, encode_schedule(self._sealer(), rec)) for rec, expected in writes]

        def apply(conn: sqlite3.Connection) -> list[bool]:
            done = []
            for rec, expected, data in rows:
                if expected is None:
                    cursor = conn.execute(_INSERT, (rec.schedule_id, rec.workflow, rec.revision, rec.due_at, data))
                else:
                    cursor = conn.execute(
                        _UPDATE, (rec.workflow, rec.revision, rec.due_at, data, rec.schedule_id, expected)
                    )
                done.append(cursor.rowcount == 1)
            return done

        result: list[bool] = await self._transact(apply)
        return result

    async def delete(self, schedule_id: str, expected: int) -> bool:
        def apply(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "DELETE FROM schedules WHERE schedule_id = ? AND revision = ?", (schedule_id, expected)
            )
            return cursor.rowcount == 1

        result: bool = await self._transact(apply)
        return result
