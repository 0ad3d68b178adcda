"""What the PostgreSQL store's table groups (events, flow control, schedules) share: the store's
connection helper, and one query through it.

A part never holds a connection of its own: ``with_connection`` runs a function on a pooled
connection, again on a new one if the connection is lost, as the store does for itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncpg

WithConnection = Callable[[Callable[["asyncpg.Connection"], Awaitable[Any]]], Awaitable[Any]]


class PgPart:
    """A group of the store's tables behind one interface (`PgEvents`, `PgFlow`)."""

    def __init__(self, with_connection: WithConnection) -> None:
        self._with = with_connection

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        """The rows of one statement (none for a statement without RETURNING)."""

        async def go(conn: asyncpg.Connection) -> list[Any]:
            return list(await conn.fetch(sql, *args))

        rows: list[Any] = await self._with(go)
        return rows
