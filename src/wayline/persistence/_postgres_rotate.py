"""Key rotation on PostgreSQL: the reads and the compare-and-set writes (see `._rotate`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg

from ._crypto import Sealer
from ._rotate import BlobTable, KeyRotation, Write, loose_rows, rotate

_RUNS = "SELECT run_id, snapshot FROM wayline.runs WHERE run_id > $1 ORDER BY run_id LIMIT $2"
_HISTORY = "SELECT run_id, seq, events FROM wayline.history WHERE run_id = ANY($1::text[])"
_SET_RUN = "UPDATE wayline.runs SET snapshot = $1 WHERE run_id = $2 AND snapshot = $3"
_BLOBS = "SELECT digest, data FROM wayline.blobs WHERE digest = ANY($1::text[])"
_REFS = "SELECT run_id, digest FROM wayline.run_blobs WHERE run_id = ANY($1::text[])"
_SET_BLOB = "UPDATE wayline.blobs SET data = $1, size = $2 WHERE digest = $3 AND data = $4"
_SET_ROW = "UPDATE wayline.history SET events = $1 WHERE run_id = $2 AND seq = $3 AND events = $4"


async def pg_rotate(
    sealer: Sealer,
    fetch: Callable[..., Awaitable[list[Any]]],
    with_connection: Callable[[Callable[[asyncpg.Connection], Awaitable[Any]]], Awaitable[Any]],
    batch_size: int,
    progress: Callable[[KeyRotation], Any] | None,
    wrap: Callable[[Write], Write] | None = None,
) -> KeyRotation:
    async def read_runs(after: str, limit: int) -> list[Any]:
        return await fetch(_RUNS, after, limit)

    async def read_history(run_ids: list[str]) -> list[Any]:
        return await fetch(_HISTORY, run_ids)

    async def write(
        snaps: list[tuple[str, bytes, bytes]], hist: list[tuple[str, int, bytes, bytes]]
    ) -> tuple[int, int]:
        async def go(conn: asyncpg.Connection) -> tuple[int, int]:
            n = m = 0
            async with conn.transaction():
                for run_id, old, new in snaps:
                    n += int((await conn.execute(_SET_RUN, new, run_id, old)).split()[-1])
                for run_id, seq, old, new in hist:
                    m += int((await conn.execute(_SET_ROW, new, run_id, seq, old)).split()[-1])
            return n, m

        done: tuple[int, int] = await with_connection(go)
        return done

    async def read_sql(sql: str, params: Sequence[Any]) -> list[Any]:
        return await fetch(sql, *params)

    async def write_sql(sql: str, params: list[tuple[Any, ...]]) -> int:
        async def go(conn: asyncpg.Connection) -> int:
            n = 0
            async with conn.transaction():
                for p in params:
                    n += int((await conn.execute(sql, *p)).split()[-1])
            return n

        written: int = await with_connection(go)
        return written

    async def read_blobs(digests: list[str]) -> dict[str, bytes]:
        return {d: bytes(data) for d, data in await fetch(_BLOBS, digests)}

    async def read_refs(run_ids: list[str]) -> list[Any]:
        return await fetch(_REFS, run_ids)

    async def write_blobs(changes: list[tuple[str, bytes, bytes]]) -> int:
        return await write_sql(_SET_BLOB, [(new, len(new), digest, old) for digest, old, new in changes])

    rows = loose_rows(read_sql, write_sql, schema="wayline.", mark=lambda i: f"${i}")
    return await rotate(
        sealer,
        read_runs,
        read_history,
        write,
        batch_size=batch_size,
        progress=progress,
        wrap=wrap,
        rows=rows,
        blobs=BlobTable(read_blobs, write_blobs, read_refs),
    )
