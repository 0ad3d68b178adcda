"""Everything a database holds at rest, as bytes: the SQLite file and its write-ahead log, or
every stored row of a PostgreSQL database (snapshots, history, inbox, blobs, metadata)."""

from __future__ import annotations

from pathlib import Path

MAGIC = b"\x00wl\x01"


def sqlite_bytes(path: str) -> bytes:
    out = b""
    for suffix in ("", "-wal", "-journal"):
        p = Path(path + suffix)
        if p.exists():
            out += p.read_bytes()
    return out


async def postgres_bytes(url: str) -> bytes:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        out = b""
        for table, column in (
            ("runs", "snapshot"),
            ("history", "events"),
            ("inbox", "message"),
            ("blobs", "data"),
            ("events", "body"),
            ("schedules", "record"),
        ):
            for row in await conn.fetch(f"SELECT {column} FROM wayline.{table}"):
                out += bytes(row[0])
        for row in await conn.fetch("SELECT CAST(m AS text) FROM wayline.run_metadata AS m"):
            out += row[0].encode()
        return out
    finally:
        await conn.close()


async def stored(db: str) -> bytes:
    if db.startswith("postgresql://"):
        return await postgres_bytes(db)
    return sqlite_bytes(db)


def key_ids_in(data: bytes, *ids: str) -> set[str]:
    """Which of ``ids`` label an encrypted value in ``data``."""
    return {i for i in ids if MAGIC + bytes((len(i.encode()),)) + i.encode() in data}
