"""Several workers on one PostgreSQL database, at the store level: two stores are two workers.

A lease's clock is the server's: where a test needs a lease to have expired, it moves that
worker's ``lease_until`` into the past, exactly what a worker paused past its lease looks like
to the others, without waiting for it.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

from _postgres import pg_stores
from wayline._errors import DatabaseOwnedByWorkerError, LeaseLostError
from wayline.persistence import RunRecord, RunStarted, RunStatus, SignalMessage, StepSucceeded

pytestmark = pytest.mark.anyio


def rec(run_id: str, seq: int = 1, **kw: Any) -> RunRecord:
    kw.setdefault("status", RunStatus.RUNNING)
    return RunRecord(run_id=run_id, workflow="wf", created_at=1.0, history_seq=seq, **kw)


def stepped(i: int) -> list[Any]:
    return [StepSucceeded(ts=float(i), step=f"s{i}", index=i, attempt=1, result=i)]


async def expire(store: Any) -> None:
    """Make ``store``'s worker lease lapse now (as a long pause would)."""
    import asyncpg

    conn = await asyncpg.connect(store.url)
    try:
        await conn.execute(
            "UPDATE wayline.workers SET lease_until = now() - interval '1 second' WHERE id = $1", store.worker_id
        )
    finally:
        await conn.close()


async def create(store: Any, *ids: str) -> None:
    for run_id in ids:
        await store.create_run(rec(run_id), [RunStarted(ts=1.0, workflow="wf", version="1")])


async def test_two_workers_claim_disjoint_sets_of_runs(pg_url: str) -> None:
    async with pg_stores(pg_url, 3) as (client, a, b):
        await create(client, *(f"r{i:02}" for i in range(30)))
        await a.register_worker("a")
        await b.register_worker("b")
        got_a, got_b = await asyncio.gather(a.claim_runs(20), b.claim_runs(20))
        ids_a, ids_b = {lease.run_id for lease in got_a}, {lease.run_id for lease in got_b}
        assert not ids_a & ids_b  # SKIP LOCKED: never the same run twice
        assert ids_a | ids_b == {f"r{i:02}" for i in range(30)}
        assert all(lease.fence == 1 for lease in [*got_a, *got_b])
        assert await a.claim_runs(10) == []  # nothing left: the others are owned by a live worker
        workers = {w.worker_id: w for w in await client.list_workers()}
        assert workers["a"].runs == len(ids_a) and workers["b"].runs == len(ids_b)


async def test_a_run_owned_by_a_live_worker_cannot_be_claimed(pg_url: str) -> None:
    async with pg_stores(pg_url, 2) as (a, b):
        await a.register_worker("a")
        await b.register_worker("b")
        await create(a, "mine")  # a worker that creates a run owns it
        assert await b.claim_run("mine") is None
        assert await a.claim_run("mine") is not None
        await a.checkpoint(rec("mine", seq=2, vars={"by": "a"}), stepped(1))


async def test_expired_lease_run_taken_over_and_the_stale_commit_refused(pg_url: str) -> None:
    async with pg_stores(pg_url, 2) as (a, b):
        await a.register_worker("a", lease_seconds=30)
        await b.register_worker("b", lease_seconds=30)
        await create(a, "r")
        await a.checkpoint(rec("r", seq=2, vars={"by": "a"}), stepped(1))
        await expire(a)  # a pauses past its lease
        lease = await b.claim_run("r")
        assert lease is not None and lease.fence == 2
        await b.checkpoint(rec("r", seq=3, vars={"by": "b"}), stepped(2))
        # a comes back and commits what it had computed: refused, precisely
        with pytest.raises(LeaseLostError) as info:
            await a.checkpoint(rec("r", seq=3, vars={"by": "stale a"}), stepped(2))
        assert info.value.run_id == "r" and info.value.worker_id == "a"
        got = await b.get_run("r")
        assert got is not None and got.vars == {"by": "b"}
        assert [e.result for e in await b.get_history("r") if isinstance(e, StepSucceeded)] == [1, 2]
        # a's next renewal tells it what it lost; registered again, it holds nothing
        assert await a.renew_worker() == ["r"]
        assert {w.worker_id: w.runs for w in await a.list_workers()} == {"a": 0, "b": 1}


async def test_only_the_stale_runs_write_is_refused_in_a_group_commit(pg_url: str) -> None:
    from wayline.persistence import PostgresStore

    async with pg_stores(pg_url, 1) as (old,):
        await old.register_worker("w")
        await create(old, "taken", "other")
        # The same worker id starts again elsewhere (the old process is paused): the new
        # incarnation takes over what the old one owned and claims "taken" (fence 2).
        new = PostgresStore(pg_url)
        await new.start()
        try:
            await new.register_worker("w")
            assert (await new.claim_run("taken")) is not None
            results = await asyncio.gather(  # queued together: one statement
                old.checkpoint(rec("taken", seq=2, vars={"stale": True}), stepped(1)),
                old.create_run(rec("fresh"), []),
                old.append_inbox("other", SignalMessage(name="s")),
                new.checkpoint(rec("taken", seq=2, vars={"current": True}), stepped(1)),
                return_exceptions=True,
            )
            assert isinstance(results[0], LeaseLostError)
            assert results[1] is None and isinstance(results[2], int) and results[3] is None
            got = await new.get_run("taken")
            assert got is not None and got.vars == {"current": True}
            assert await new.get_run("fresh") is not None
            assert [m.name for _, m in await new.get_inbox("other")] == ["s"]
        finally:
            await new.close()


async def test_a_worker_commits_only_runs_it_holds(pg_url: str) -> None:
    async with pg_stores(pg_url, 2) as (client, a):
        await create(client, "unclaimed")
        await a.register_worker("a")
        with pytest.raises(LeaseLostError):
            await a.checkpoint(rec("unclaimed", seq=2), stepped(1))
        lease = await a.claim_run("unclaimed")
        assert lease is not None
        await a.checkpoint(rec("unclaimed", seq=2, vars={"ok": 1}), stepped(1))
        await a.release_runs(["unclaimed"])
        assert (await client.list_workers())[0].runs == 0
        with pytest.raises(LeaseLostError):
            await a.checkpoint(rec("unclaimed", seq=3), stepped(2))


async def test_exclusive_worker_keeps_others_out_until_its_lease_expires(pg_url: str) -> None:
    async with pg_stores(pg_url, 3) as (a, b, c):
        await a.register_worker("a", exclusive=True)
        await create(a, "r")
        await create(c, "u")  # a client's run: the exclusive worker commits it unfenced...
        await a.checkpoint(rec("u", seq=2, vars={"by": "a"}), [])
        with pytest.raises(DatabaseOwnedByWorkerError) as info:
            await b.register_worker("b", exclusive=True)
        assert info.value.worker_id == "a" and "worker=False" in str(info.value)
        with pytest.raises(DatabaseOwnedByWorkerError):
            await c.register_worker("c")  # not even a shared worker beside an exclusive one
        await expire(a)
        await b.register_worker("b", exclusive=True)  # a is dead to the others now
        # a's writes are fenced by its registration, which b's removed: nothing of a's lands
        with pytest.raises(LeaseLostError):
            await a.checkpoint(rec("r", seq=2, vars={"by": "a"}), [])
        with pytest.raises(LeaseLostError):  # ... but only while its registration stands
            await a.checkpoint(rec("u", seq=3, vars={"by": "stale a"}), [])
        assert await b.claim_run("r") is not None
        await b.checkpoint(rec("r", seq=2, vars={"by": "b"}), [])
        got = await c.get_run("r")
        assert got is not None and got.vars == {"by": "b"}


async def test_closing_a_worker_frees_its_runs_at_once(pg_url: str) -> None:
    async with pg_stores(pg_url, 1) as (b,):
        from wayline.persistence import PostgresStore

        a = PostgresStore(pg_url)
        await a.start()
        await a.register_worker("a", exclusive=True)
        await create(a, "r")
        await a.close()
        await b.register_worker("b", exclusive=True)  # no lease to wait for
        lease = await b.claim_run("r")
        assert lease is not None and lease.fence == 2


async def test_notifications_reach_a_subscriber_and_survive_a_lost_connection(pg_url: str) -> None:
    from _postgres import admin

    async with pg_stores(pg_url, 2) as (owner, client):
        heard: list[tuple[str, str]] = []
        changed = asyncio.Event()

        def listener(topic: str, key: str) -> None:
            heard.append((topic, key))
            changed.set()

        async def next_heard(n: int) -> None:
            while len(heard) < n:
                changed.clear()
                await asyncio.wait_for(changed.wait(), timeout=10)

        sub = await owner.subscribe(listener)
        try:
            await create(client, "r")
            await next_heard(1)
            assert heard == [("runs", "1")]
            await client.append_inbox("r", SignalMessage(name="go"))
            await next_heard(2)
            assert heard[1] == ("inbox", "r")
            database = pg_url.rsplit("/", 1)[1]
            await admin(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = $1 AND application_name LIKE 'wayline listener %'",
                database,
            )
            await next_heard(3)
            assert heard[2] == ("resync", "")  # told to read the store: anything meanwhile is missed
            await client.append_inbox("r", SignalMessage(name="again"))
            await next_heard(4)
            assert heard[3] == ("inbox", "r")
        finally:
            await sub.close()


_HOLDER = """
import asyncio, sys
from wayline.persistence import PostgresStore

async def main(url):
    store = PostgresStore(url)
    await store.start()
    await store.register_worker("a", lease_seconds=3600, exclusive=True)
    print(store.tag, flush=True)
    await asyncio.Event().wait()

asyncio.run(main(sys.argv[1]))
"""


async def test_a_worker_killed_with_sigkill_does_not_hold_the_database(pg_url: str) -> None:
    import asyncpg

    from _postgres import ADMIN_URL

    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", _HOLDER, pg_url, stdout=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        tag = (await asyncio.wait_for(proc.stdout.readline(), timeout=30)).decode().strip()
        conn = await asyncpg.connect(pg_url)
        try:
            # As if it ran on another host: only its sessions can tell that it died.
            await conn.execute("UPDATE wayline.workers SET host = 'another-host' WHERE id = 'a'")
        finally:
            await conn.close()
        async with pg_stores(pg_url, 1) as (b,):
            with pytest.raises(DatabaseOwnedByWorkerError):  # alive: it keeps the database
                await b.register_worker("b", exclusive=True)
            proc.kill()  # SIGKILL: its lease stays, its sessions end with it
            await proc.wait()
            admin = await asyncpg.connect(ADMIN_URL)
            try:
                gone = "SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name LIKE $1"
                async with asyncio.timeout(30):
                    while not await admin.fetchval(gone, f"% {tag}"):  # noqa: ASYNC110 - the server's view
                        await asyncio.sleep(0.01)
            finally:
                await admin.close()
            await b.register_worker("b", exclusive=True)  # at once, not in an hour
            assert [w.worker_id for w in await b.list_workers()] == ["b"]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_an_owner_renews_its_lease_in_the_background(pg_url: str) -> None:
    from wayline.persistence import PostgresStore

    # Long enough that a loaded machine does not stall a renewal past it (renewals come every
    # third of it), short enough to see several pass.
    owner = PostgresStore(pg_url, lease_seconds=1.5)
    await owner.start()
    try:
        await owner.claim_ownership()
        # Wait for four renewals (a condition on the server's row): by then the first lease is
        # past, and the database is still held, so no one may take over.
        seen = {(await owner.list_workers())[0].heartbeat_at}
        async with asyncio.timeout(10):
            while len(seen) < 5:
                seen.add((await owner.list_workers())[0].heartbeat_at)
                await asyncio.sleep(0.02)
        assert max(seen) - min(seen) > 1.5
        async with pg_stores(pg_url, 1) as (other,):
            with pytest.raises(DatabaseOwnedByWorkerError):
                await other.register_worker("other", exclusive=True)
    finally:
        await owner.close()


async def test_a_worker_whose_process_on_this_host_is_dead_is_removed_at_once(pg_url: str) -> None:
    import subprocess

    async with pg_stores(pg_url, 2) as (a, b):
        await a.register_worker("a", lease_seconds=3600, exclusive=True)
        # a's row as a process of this host that has exited would leave it (its sessions may
        # still be closing): a real pid, of a process that is gone.
        gone = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", "import os; print(os.getpid())"],
            capture_output=True,
            text=True,
            check=True,
        )
        conn = await asyncpg_connect(pg_url)
        try:
            await conn.execute("UPDATE wayline.workers SET pid = $1 WHERE id = 'a'", int(gone.stdout))
        finally:
            await conn.close()
        await b.register_worker("b", exclusive=True)  # a's sessions are open, but its process is gone
        assert [w.worker_id for w in await b.list_workers()] == ["b"]
        with pytest.raises(LeaseLostError):  # and a's commits are refused from now on
            await a.checkpoint(rec("x"), [])


async def asyncpg_connect(url: str) -> Any:
    import asyncpg

    return await asyncpg.connect(url)
