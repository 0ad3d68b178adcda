"""Throttle and debounce in the PostgreSQL store: ``wayline.throttle_queue``,
``wayline.throttle_pace`` and ``wayline.debounces`` (migration 7), shared by every worker.

A throttle's admission and a debounce's push take a transaction-scoped advisory lock on
their group and key, so two workers pacing one key do it one after the other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._pacing import Debounced, DebouncePush, Throttled, ThrottlePosition, pace, push
from ._postgres_part import PgPart

if TYPE_CHECKING:
    import asyncpg

MIGRATION = (
    """CREATE TABLE wayline.throttle_queue (
        seq      bigserial PRIMARY KEY,
        run_id   text NOT NULL UNIQUE,
        grp      text NOT NULL,
        key      text NOT NULL,
        priority integer NOT NULL,
        lim      integer NOT NULL,
        period   double precision NOT NULL,
        burst    integer NOT NULL,
        passed   boolean NOT NULL DEFAULT false
    )""",
    "CREATE INDEX throttle_queue_order ON wayline.throttle_queue (grp, key, passed, priority DESC, seq)",
    """CREATE TABLE wayline.throttle_pace (
        grp text NOT NULL,
        key text NOT NULL,
        tat double precision NOT NULL,
        PRIMARY KEY (grp, key)
    )""",
    """CREATE TABLE wayline.debounces (
        grp      text NOT NULL,
        key      text NOT NULL,
        run_id   text NOT NULL UNIQUE,
        first_at double precision NOT NULL,
        due_at   double precision NOT NULL,
        count    integer NOT NULL,
        PRIMARY KEY (grp, key)
    )""",
    "CREATE INDEX debounces_by_due ON wayline.debounces (due_at)",
)

_LOCK = "SELECT pg_advisory_xact_lock(hashtext('wayline.pace:' || $1 || ':' || $2))"
_COLUMNS = "run_id, grp, key, first_at, due_at, count"


def _debounced(r: Any) -> Debounced:
    return Debounced(run_id=r[0], group=r[1], key=r[2], first_at=r[3], due_at=r[4], count=r[5])


class PgPacing(PgPart):
    """`PacingStore` for `PostgresStore`."""

    async def throttle_enqueue(self, entry: Throttled) -> None:
        await self._fetch(
            "INSERT INTO wayline.throttle_queue (run_id, grp, key, priority, lim, period, burst) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (run_id) DO NOTHING",
            entry.run_id,
            entry.group,
            entry.key,
            entry.priority,
            entry.limit,
            float(entry.period),
            entry.burst,
        )

    async def throttle_admit(
        self, group: str, key: str, limit: int, period: float, burst: int, now: float
    ) -> tuple[list[str], float | None]:
        async def go(conn: asyncpg.Connection) -> tuple[list[str], float | None]:
            async with conn.transaction():
                await conn.execute(_LOCK, "throttle:" + group, key)
                tat = await conn.fetchval(
                    "SELECT tat FROM wayline.throttle_pace WHERE grp = $1 AND key = $2", group, key
                )
                admitted: list[str] = []
                nxt: float | None = None
                for row in await conn.fetch(
                    "SELECT run_id FROM wayline.throttle_queue WHERE grp = $1 AND key = $2 AND NOT passed "
                    "ORDER BY priority DESC, seq",
                    group,
                    key,
                ):
                    allowed, at = pace(tat, now, limit, period, burst)
                    if not allowed:
                        nxt = at
                        break
                    tat = at
                    await conn.execute("UPDATE wayline.throttle_queue SET passed = true WHERE run_id = $1", row[0])
                    admitted.append(row[0])
                if admitted:
                    await conn.execute(
                        "INSERT INTO wayline.throttle_pace (grp, key, tat) VALUES ($1, $2, $3) "
                        "ON CONFLICT (grp, key) DO UPDATE SET tat = excluded.tat",
                        group,
                        key,
                        tat,
                    )
                return admitted, nxt

        result: tuple[list[str], float | None] = await self._with(go)
        return result

    async def throttle_queues(self) -> list[tuple[str, str]]:
        rows = await self._fetch(
            "SELECT DISTINCT grp, key FROM wayline.throttle_queue WHERE NOT passed ORDER BY grp, key"
        )
        return [(r[0], r[1]) for r in rows]

    async def throttle_passed(self) -> list[str]:
        rows = await self._fetch("SELECT run_id FROM wayline.throttle_queue WHERE passed ORDER BY seq")
        return [r[0] for r in rows]

    async def throttle_done(self, run_id: str) -> None:
        await self._fetch("DELETE FROM wayline.throttle_queue WHERE run_id = $1 AND passed", run_id)

    async def throttle_position(self, run_id: str) -> ThrottlePosition | None:
        rows = await self._fetch(
            "SELECT run_id, grp, key, priority, seq, lim, period, burst FROM wayline.throttle_queue "
            "WHERE run_id = $1 AND NOT passed",
            run_id,
        )
        if not rows:
            return None
        r = rows[0]
        entry = Throttled(
            run_id=r[0], group=r[1], key=r[2], priority=r[3], seq=r[4], limit=r[5], period=r[6], burst=r[7]
        )
        ahead = await self._fetch(
            "SELECT COUNT(*) FROM wayline.throttle_queue WHERE grp = $1 AND key = $2 AND NOT passed "
            "AND (priority > $3 OR (priority = $3 AND seq < $4))",
            entry.group,
            entry.key,
            entry.priority,
            entry.seq,
        )
        tat = await self._fetch(
            "SELECT tat FROM wayline.throttle_pace WHERE grp = $1 AND key = $2", entry.group, entry.key
        )
        return ThrottlePosition(entry=entry, ahead=ahead[0][0], tat=float(tat[0][0]) if tat else None)

    async def debounce(
        self, group: str, key: str, run_id: str, now: float, period: float, max_wait: float | None
    ) -> DebouncePush:
        async def go(conn: asyncpg.Connection) -> DebouncePush:
            async with conn.transaction():
                await conn.execute(_LOCK, "debounce:" + group, key)
                row = await conn.fetchrow(
                    f"SELECT {_COLUMNS} FROM wayline.debounces WHERE grp = $1 AND key = $2 FOR UPDATE", group, key
                )
                out = push(None if row is None else _debounced(row), run_id, now, period, max_wait)
                if out.created:
                    await conn.execute("DELETE FROM wayline.debounces WHERE grp = $1 AND key = $2", group, key)
                    await conn.execute(
                        f"INSERT INTO wayline.debounces ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, 1)",
                        run_id,
                        group,
                        key,
                        now,
                        out.due_at,
                    )
                else:
                    await conn.execute(
                        "UPDATE wayline.debounces SET due_at = $1, count = count + 1 WHERE grp = $2 AND key = $3",
                        out.due_at,
                        group,
                        key,
                    )
                return out

        result: DebouncePush = await self._with(go)
        return result

    async def take_due(self, now: float) -> list[str]:
        rows = await self._fetch(
            "DELETE FROM wayline.debounces WHERE run_id IN (SELECT run_id FROM wayline.debounces WHERE due_at <= $1 "
            "FOR UPDATE SKIP LOCKED) RETURNING run_id, due_at",
            now,
        )
        return [r[0] for r in sorted(rows, key=lambda r: r[1])]

    async def next_due(self) -> float | None:
        value = await self._fetch("SELECT MIN(due_at) FROM wayline.debounces")
        return None if not value or value[0][0] is None else float(value[0][0])

    async def debounced(self, run_id: str) -> Debounced | None:
        rows = await self._fetch(f"SELECT {_COLUMNS} FROM wayline.debounces WHERE run_id = $1", run_id)
        return _debounced(rows[0]) if rows else None

    async def held(self) -> set[str]:
        rows = await self._fetch("SELECT run_id FROM wayline.throttle_queue UNION SELECT run_id FROM wayline.debounces")
        return {r[0] for r in rows}

    async def withdraw(self, run_id: str) -> bool:
        a = await self._fetch("DELETE FROM wayline.throttle_queue WHERE run_id = $1 RETURNING run_id", run_id)
        b = await self._fetch("DELETE FROM wayline.debounces WHERE run_id = $1 RETURNING run_id", run_id)
        return bool(a or b)
