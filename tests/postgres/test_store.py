"""The PostgreSQL store against a real server: precise errors, migrations, lost connections,
lost acknowledgements."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from _postgres import admin
from wayline import StoreError
from wayline._errors import (
    DatabaseAuthError,
    DatabaseMissingError,
    DatabaseUnreachableError,
    SchemaVersionError,
)
from wayline.persistence import RunRecord, RunStarted, RunStatus, SignalMessage, StepSucceeded

pytestmark = pytest.mark.anyio


def rec(run_id: str, seq: int = 1, **kw: Any) -> RunRecord:
    kw.setdefault("status", RunStatus.RUNNING)
    return RunRecord(run_id=run_id, workflow="wf", created_at=1.0, history_seq=seq, **kw)


def started() -> list[Any]:
    return [RunStarted(ts=1.0, workflow="wf", version="1")]


def stepped(i: int) -> list[Any]:
    return [StepSucceeded(ts=float(i), step=f"s{i}", index=i, attempt=1, result=i)]


@contextlib.asynccontextmanager
async def opened(url: str, **kw: Any) -> AsyncIterator[Any]:
    from wayline.persistence import PostgresStore

    store = PostgresStore(url, **kw)
    await store.start()
    try:
        yield store
    finally:
        await store.close()


def with_path(url: str, path: str = "", user: str | None = None, port: int | None = None) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{user or parts.username}@{host}:{port or parts.port or 5432}"
    return urlunsplit(parts._replace(netloc=netloc, path=path or parts.path))


# --- precise errors ---------------------------------------------------------------------------


async def test_unreachable_server_is_named_with_what_to_do(pg_url: str) -> None:
    from wayline.persistence import PostgresStore

    url = with_path(pg_url, port=1)  # nothing listens on port 1
    with pytest.raises(DatabaseUnreachableError) as info:
        await PostgresStore(url, connect_timeout=2).start()
    assert "cannot reach PostgreSQL" in str(info.value) and "server is running" in str(info.value)
    assert ":1/" in info.value.url


async def test_refused_user_is_an_auth_error(pg_url: str) -> None:
    from wayline.persistence import PostgresStore

    with pytest.raises(DatabaseAuthError) as info:
        await PostgresStore(with_path(pg_url, user="no_such_wayline_user")).start()
    assert info.value.user == "no_such_wayline_user"
    assert "pg_hba.conf" in str(info.value)


async def test_missing_database_says_how_to_create_it(pg_url: str) -> None:
    from wayline.persistence import PostgresStore

    with pytest.raises(DatabaseMissingError) as info:
        await PostgresStore(with_path(pg_url, path="/wayline_no_such_db")).start()
    assert info.value.database == "wayline_no_such_db"
    assert "createdb wayline_no_such_db" in str(info.value)


async def test_password_never_appears_in_messages(pg_url: str) -> None:
    from wayline.persistence import PostgresStore

    parts = urlsplit(with_path(pg_url, port=1))
    url = urlunsplit(parts._replace(netloc=f"{parts.username}:s3cret@{parts.hostname}:1"))
    with pytest.raises(DatabaseUnreachableError) as info:
        await PostgresStore(url, connect_timeout=2).start()
    assert "s3cret" not in str(info.value) and ":***@" in str(info.value)


async def test_schema_is_versioned_and_a_newer_one_is_refused(pg_url: str) -> None:
    from wayline.persistence._postgres_schema import PG_SCHEMA_VERSION

    async with opened(pg_url) as store:
        await store.create_run(rec("kept"), started())
    async with opened(pg_url) as store:  # opening again migrates nothing and keeps the data
        assert (await store.get_run("kept")) == rec("kept")
    import asyncpg

    conn = await asyncpg.connect(pg_url)
    try:
        assert await conn.fetchval("SELECT version FROM wayline.meta") == PG_SCHEMA_VERSION
        await conn.execute("UPDATE wayline.meta SET version = $1", PG_SCHEMA_VERSION + 1)
    finally:
        await conn.close()
    from wayline.persistence import PostgresStore

    with pytest.raises(SchemaVersionError) as info:
        await PostgresStore(pg_url).start()
    assert info.value.found == PG_SCHEMA_VERSION + 1 and "upgrade wayline" in str(info.value)


async def test_concurrent_first_opens_migrate_once(pg_url: str) -> None:
    from wayline.persistence import PostgresStore

    stores = [PostgresStore(pg_url) for _ in range(3)]
    await asyncio.gather(*(s.start() for s in stores))
    try:
        await stores[0].create_run(rec("r"), started())
        assert await stores[2].get_run("r") == rec("r")
    finally:
        for s in stores:
            await s.close()


async def test_closed_store_says_so(pg_url: str) -> None:
    async with opened(pg_url) as store:
        pass
    with pytest.raises(StoreError, match="closed"):
        await store.get_run("r")


# --- lost connections ----------------------------------------------------------------------------


async def terminate(url: str, role: str) -> int:
    """pg_terminate_backend every session of ``role`` on ``url``'s database; how many."""
    database = urlsplit(url).path.lstrip("/")
    rows: Any = await admin(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name LIKE $2",
        database,
        f"wayline {role} %",
    )
    return len(rows)


async def test_writes_go_on_after_the_server_ends_the_connection(pg_url: str) -> None:
    async with opened(pg_url) as store:
        await store.create_run(rec("r"), started())
        assert await terminate(pg_url, "writer") == 1
        assert await terminate(pg_url, "reader") >= 1
        # The next write finds the connection dead, commits on a new one, and returns.
        await store.checkpoint(rec("r", seq=2, vars={"v": 1}), stepped(1))
        got = await store.get_run("r")  # the reads' pool reconnects too
        assert got is not None and got.vars == {"v": 1}
        assert [type(e).__name__ for e in await store.get_history("r")] == ["RunStarted", "StepSucceeded"]


async def test_a_server_that_stays_away_fails_the_write_precisely(pg_url: str) -> None:
    async with opened(pg_url, reconnect_timeout=0.5) as store:
        await store.create_run(rec("r"), started())
        store.url = with_path(pg_url, port=1)  # every new connection now fails, as if the server were gone
        await terminate(pg_url, "writer")
        with pytest.raises(DatabaseUnreachableError, match=r"not made again within 0\.5s"):
            await store.checkpoint(rec("r", seq=2), stepped(1))
        store.url = pg_url  # back: the store works again
        await store.checkpoint(rec("r", seq=2, vars={"back": True}), stepped(1))
        got = await store.get_run("r")
        assert got is not None and got.vars == {"back": True}


class AckDropper:
    """A TCP proxy between the store and the server that, once armed, lets the next statement
    reach the server and commit, then swallows the server's answer and cuts the connection:
    the commit happened, and the client never hears of it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.armed = False
        self.dropped = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _client(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        sreader, swriter = await asyncio.open_connection(self.host, self.port)

        async def up() -> None:
            while data := await creader.read(65536):
                swriter.write(data)
                await swriter.drain()

        async def down() -> None:
            while data := await sreader.read(65536):
                if self.armed:
                    # Swallow the answer until ReadyForQuery (idle): by then the server has
                    # committed the statement's implicit transaction. Then cut both sides.
                    if data.endswith(b"Z\x00\x00\x00\x05I"):
                        self.armed = False
                        self.dropped += 1
                        cwriter.transport.abort()
                        swriter.close()
                        return
                    continue
                cwriter.write(data)
                await cwriter.drain()

        tasks = [asyncio.ensure_future(up()), asyncio.ensure_future(down())]
        with contextlib.suppress(Exception):
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        cwriter.transport.abort()
        swriter.transport.abort()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()


async def test_a_commit_whose_acknowledgement_was_lost_is_not_committed_twice(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    parts = urlsplit(pg_url)
    proxy = AckDropper(parts.hostname or "127.0.0.1", parts.port or 5432)
    port = await proxy.start()
    try:
        async with opened(with_path(pg_url, port=port)) as store:
            await store.create_run(rec("r"), started())  # the writer's statement is now prepared
            await store.create_run(rec("old"), started())
            proxy.armed = True
            with caplog.at_level(logging.WARNING, logger="wayline.store"):
                created, existing, _, seq = await asyncio.gather(  # one batch: one statement
                    store.create_run(rec("new"), started()),
                    store.create_run(rec("old", input="again"), started()),
                    store.checkpoint(rec("r", seq=2, vars={"v": 2}), stepped(1)),
                    store.append_inbox("r", SignalMessage(name="go")),
                )
            assert proxy.dropped == 1
            assert any("had committed" in r.getMessage() for r in caplog.records)
            # Every caller got the answer of the one commit that happened:
            assert created is None  # the run is new (a retry would have found it "existing")
            assert existing == rec("old")
            assert seq is not None and [s for s, _ in await store.get_inbox("r")] == [seq]  # stored once
            assert [type(e).__name__ for e in await store.get_history("r")] == ["RunStarted", "StepSucceeded"]
            got = await store.get_run("r")
            assert got is not None and got.vars == {"v": 2}
            # and the store goes on
            await store.checkpoint(rec("r", seq=3, vars={"v": 3}), stepped(2))
            assert len(await store.get_history("r")) == 3
    finally:
        await proxy.close()

