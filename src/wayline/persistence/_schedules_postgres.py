"""Schedules in the PostgreSQL store: ``wayline.schedules`` (migration 2) and its statements.

Reads and writes use the store's pooled connections. A write is one statement (every
compare-and-swap of a pass, whatever their number), retried on a new connection if the
connection is lost; a retry whose first attempt had committed finds its own bytes stored and
reports success, so a lost acknowledgement never turns a write into a conflict (only a retried
write is looked at that way).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from .._errors import DatabaseCorruptError
from ._crypto import Sealer
from ._postgres_part import PgPart, WithConnection
from ._schedules import ScheduleRecord, ScheduleWrite, decode_schedule, encode_schedule

if TYPE_CHECKING:
    import asyncpg

T = TypeVar("T")

#: The table, as migration 2 of the PostgreSQL schema creates it.
MIGRATION = (
    """CREATE TABLE wayline.schedules (
        schedule_id text PRIMARY KEY,
        workflow    text NOT NULL,
        revision    bigint NOT NULL,
        due_at      double precision,
        record      bytea NOT NULL
    )""",
    "CREATE INDEX schedules_by_due ON wayline.schedules (due_at) WHERE due_at IS NOT NULL",
)

_PUT = """
WITH w AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::float8[], $5::bytea[], $6::bigint[])
        AS t(schedule_id, workflow, revision, due_at, record, expected)),
ins AS (
    INSERT INTO wayline.schedules (schedule_id, workflow, revision, due_at, record)
    SELECT schedule_id, workflow, revision, due_at, record FROM w WHERE expected IS NULL
    ON CONFLICT (schedule_id) DO NOTHING
    RETURNING schedule_id),
upd AS (
    UPDATE wayline.schedules s
    SET workflow = w.workflow, revision = w.revision, due_at = w.due_at, record = w.record
    FROM w
    WHERE w.expected IS NOT NULL AND s.schedule_id = w.schedule_id AND s.revision = w.expected
    RETURNING s.schedule_id)
SELECT schedule_id FROM ins UNION ALL SELECT schedule_id FROM upd
"""


class PgSchedules(PgPart):
    """`ScheduleStore` for `PostgresStore`.

    Args:
        with_connection: runs a function on a pooled connection, again on a new one if the
            connection is lost.
        url: the database as errors name it.
    """

    def __init__(self, with_connection: WithConnection, url: str, sealer: Callable[[], Sealer]) -> None:
        super().__init__(with_connection)
        self._sealer = sealer  # the store's, which the runtime sets after the store is made
        self._url = url

    def _decode(self, schedule_id: str, data: bytes) -> ScheduleRecord:
        try:
            return decode_schedule(self._sealer(), data)
        except msgspec.DecodeError as exc:
            raise DatabaseCorruptError(self._url, f"schedule {schedule_id!r} cannot be decoded: {exc}") from exc

    async def get(self, schedule_id: str) -> ScheduleRecord | None:
        rows = await self._fetch("SELECT record FROM wayline.schedules WHERE schedule_id = $1", schedule_id)
        return self._decode(schedule_id, rows[0][0]) if rows else None

    async def all(self) -> list[ScheduleRecord]:
        rows = await self._fetch("SELECT schedule_id, record FROM wayline.schedules ORDER BY schedule_id")
        return [self._decode(sid, data) for sid, data in rows]

    async def due(self, until: float, workflows: Collection[str], limit: int = 1000) -> list[ScheduleRecord]:
        rows = await self._fetch(
            "SELECT schedule_id, record FROM wayline.schedules WHERE due_at IS NOT NULL AND due_at <= $1 "
            "AND workflow = ANY($2::text[]) ORDER BY due_at, schedule_id LIMIT $3",
            until,
            list(workflows),
            limit,
        )
        return [self._decode(sid, data) for sid, data in rows]

    async def next_due(self, workflows: Collection[str]) -> float | None:
        rows = await self._fetch(
            "SELECT MIN(due_at) FROM wayline.schedules WHERE due_at IS NOT NULL AND workflow = ANY($1::text[])",
            list(workflows),
        )
        return rows[0][0] if rows else None

    async def put(self, writes: Sequence[ScheduleWrite]) -> list[bool]:
        if not writes:
            return []
        data = [encode_schedule(self._sealer(), rec) for rec, _ in writes]
        columns = (
            [rec.schedule_id for rec, _ in writes],
            [rec.workflow for rec, _ in writes],
            [rec.revision for rec, _ in writes],
            [rec.due_at for rec, _ in writes],
            data,
            [expected for _, expected in writes],
        )
        attempts = 0

        async def go(conn: asyncpg.Connection) -> list[Any]:
            nonlocal attempts
            attempts += 1
            return list(await conn.fetch(_PUT, *columns))

        done = {row[0] for row in await self._with(go)}
        missing = [rec.schedule_id for rec, _ in writes if rec.schedule_id not in done]
        if missing and attempts > 1:
            # A write that is not applied now may have been applied by an earlier attempt of
            # this same call whose acknowledgement was lost: then its bytes are stored.
            stored = await self._fetch(
                "SELECT schedule_id, record FROM wayline.schedules WHERE schedule_id = ANY($1::text[])", missing
            )
            mine = {rec.schedule_id: d for (rec, _), d in zip(writes, data, strict=True)}
            done |= {sid for sid, record in stored if bytes(record) == mine[sid]}
        return [rec.schedule_id in done for rec, _ in writes]

    async def delete(self, schedule_id: str, expected: int) -> bool:
        rows = await self._fetch(
            "DELETE FROM wayline.schedules WHERE schedule_id = $1 AND revision = $2 RETURNING schedule_id",
            schedule_id,
            expected,
        )
        return bool(rows)
