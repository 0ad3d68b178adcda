"""Flow control in the PostgreSQL store: ``wayline.flow_queue`` and ``wayline.flow_slots``
(part of migration 5), shared by every worker on the database.

Admission takes a transaction-scoped advisory lock on the hash of its group and key, so two
workers admitting for one key at the same moment count the slots one after the other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._flow import Position, QueuedRun
from ._postgres_part import PgPart

if TYPE_CHECKING:
    import asyncpg

MIGRATION = (
    """CREATE TABLE wayline.flow_queue (
        seq      bigserial PRIMARY KEY,
        run_id   text NOT NULL UNIQUE,
        grp      text NOT NULL,
        key      text NOT NULL,
        priority integer NOT NULL,
        lim      integer NOT NULL
    )""",
    "CREATE INDEX flow_queue_order ON wayline.flow_queue (grp, key, priority DESC, seq)",
    """CREATE TABLE wayline.flow_slots (
        run_id text PRIMARY KEY,
        grp    text NOT NULL,
        key    text NOT NULL
    )""",
    "CREATE INDEX flow_slots_by_key ON wayline.flow_slots (grp, key)",
    """CREATE TABLE wayline.flow_starts (
        grp    text NOT NULL,
        key    text NOT NULL,
        ts     double precision NOT NULL,
        run_id text NOT NULL UNIQUE
    )""",
    "CREATE INDEX flow_starts_by_key ON wayline.flow_starts (grp, key, ts)",
)

_LOCK = "SELECT pg_advisory_xact_lock(hashtext('wayline.flow:' || $1 || ':' || $2))"
_HEAD = "SELECT run_id, lim FROM wayline.flow_queue WHERE grp = $1 AND key = $2 ORDER BY priority DESC, seq LIMIT 1"
_HELD = "SELECT COUNT(*) FROM wayline.flow_slots WHERE grp = $1 AND key = $2"


class PgFlow(PgPart):
    """`FlowStore` for `PostgresStore`."""

    async def enqueue(self, entry: QueuedRun) -> None:
        async def go(conn: asyncpg.Connection) -> None:
            # Under the key's lock, as admission is: a run being admitted (moved from the queue
            # to a slot) is seen in its slot once that commits, not queued again beside it (the
            # reconciliation at open enqueues every QUEUED run it listed a moment before).
            async with conn.transaction():
                await conn.execute(_LOCK, entry.group, entry.key)
                await conn.execute(
                    "INSERT INTO wayline.flow_queue (run_id, grp, key, priority, lim) "
                    "SELECT $1, $2, $3, $4, $5 WHERE NOT EXISTS (SELECT 1 FROM wayline.flow_slots WHERE run_id = $1) "
                    "ON CONFLICT (run_id) DO NOTHING",
                    entry.run_id,
                    entry.group,
                    entry.key,
                    entry.priority,
                    entry.limit,
                )

        await self._with(go)

    async def admit(self, group: str, key: str) -> list[str]:
        async def go(conn: asyncpg.Connection) -> list[str]:
            admitted: list[str] = []
            async with conn.transaction():
                await conn.execute(_LOCK, group, key)
                held = await conn.fetchval(_HELD, group, key)
                while True:
                    head = await conn.fetchrow(_HEAD, group, key)
                    if head is None or held >= head[1]:
                        return admitted
                    await conn.execute("DELETE FROM wayline.flow_queue WHERE run_id = $1", head[0])
                    await conn.execute(
                        "INSERT INTO wayline.flow_slots (run_id, grp, key) VALUES ($1, $2, $3)", head[0], group, key
                    )
                    admitted.append(head[0])
                    held += 1

        result: list[str] = await self._with(go)
        return result

    async def release(self, run_id: str) -> tuple[str, str] | None:
        for table in ("flow_slots", "flow_queue"):
            rows = await self._fetch(f"DELETE FROM wayline.{table} WHERE run_id = $1 RETURNING grp, key", run_id)
            if rows:
                return (rows[0][0], rows[0][1])
        return None

    async def withdraw(self, run_id: str) -> bool:
        rows = await self._fetch("DELETE FROM wayline.flow_queue WHERE run_id = $1 RETURNING run_id", run_id)
        return bool(rows)

    async def slots(self) -> list[QueuedRun]:
        rows = await self._fetch("SELECT run_id, grp, key FROM wayline.flow_slots ORDER BY run_id")
        return [QueuedRun(run_id=r[0], group=r[1], key=r[2]) for r in rows]

    async def stalled(self) -> list[str]:
        rows = await self._fetch(
            "SELECT s.run_id FROM wayline.flow_slots s JOIN wayline.runs r ON r.run_id = s.run_id "
            "WHERE r.status = 'QUEUED' ORDER BY s.run_id"
        )
        return [r[0] for r in rows]

    async def take_rate(self, group: str, key: str, limit: int, period: float, now: float, run_id: str) -> float | None:
        async def go(conn: asyncpg.Connection) -> float | None:
            async with conn.transaction():
                await conn.execute(_LOCK, "rate:" + group, key)
                await conn.execute(
                    "DELETE FROM wayline.flow_starts WHERE grp = $1 AND key = $2 AND ts <= $3", group, key, now - period
                )
                if await conn.fetchval("SELECT 1 FROM wayline.flow_starts WHERE run_id = $1", run_id):
                    return None
                rows = await conn.fetch(
                    "SELECT ts FROM wayline.flow_starts WHERE grp = $1 AND key = $2 ORDER BY ts DESC LIMIT $3",
                    group,
                    key,
                    limit,
                )
                if len(rows) >= limit:
                    return float(rows[-1][0]) + period - now
                await conn.execute(
                    "INSERT INTO wayline.flow_starts (grp, key, ts, run_id) VALUES ($1, $2, $3, $4)",
                    group,
                    key,
                    now,
                    run_id,
                )
                return None

        result: float | None = await self._with(go)
        return result

    async def holders(self, group: str, key: str) -> list[str]:
        rows = await self._fetch(
            "SELECT run_id FROM wayline.flow_slots WHERE grp = $1 AND key = $2 ORDER BY run_id", group, key
        )
        return [r[0] for r in rows]

    async def queues(self) -> list[tuple[str, str]]:
        rows = await self._fetch("SELECT DISTINCT grp, key FROM wayline.flow_queue ORDER BY grp, key")
        return [(r[0], r[1]) for r in rows]

    async def position(self, run_id: str) -> Position | None:
        rows = await self._fetch(
            "SELECT run_id, grp, key, priority, lim, seq FROM wayline.flow_queue WHERE run_id = $1", run_id
        )
        if not rows:
            return None
        r = rows[0]
        entry = QueuedRun(run_id=r[0], group=r[1], key=r[2], priority=r[3], limit=r[4], seq=r[5])
        ahead = await self._fetch(
            "SELECT COUNT(*) FROM wayline.flow_queue WHERE grp = $1 AND key = $2 "
            "AND (priority > $3 OR (priority = $3 AND seq < $4))",
            entry.group,
            entry.key,
            entry.priority,
            entry.seq,
        )
        held = await self._fetch(_HELD, entry.group, entry.key)
        return Position(entry=entry, ahead=ahead[0][0], running=held[0][0])
