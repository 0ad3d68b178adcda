"""Workers, leases and notifications of the PostgreSQL store.

A worker registers a row with a lease (``lease_until``, renewed by a heartbeat). A run's lease
is its owner column plus that owner's worker lease: renewing is one row per worker, whatever
the number of runs it owns (a per-run expiry would rewrite every owned run, snapshot included,
at every renewal). Expired workers are deleted by the next claim or registration; their runs
are then orphans, and a claim takes a run that is unowned or orphaned and increments its
fencing counter. A worker commits a run's checkpoint only while it still owns it with the
counter it claimed (see `_postgres_sql.BATCH`).

Notifications: a batch that appends messages sends ``NOTIFY wayline_inbox, run_id`` and one
that creates runs ``NOTIFY wayline_runs, count``, delivered when it commits. A subscription
listens on its own connection and, when that connection is lost, connects again and tells its
listener to resynchronise (notifications sent meanwhile are gone; polling is the fallback).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import weakref
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any, TypeVar

import asyncpg

from .._errors import DatabaseOwnedByWorkerError
from ._leases import CLAIMABLE, Lease, Listener, WorkerInfo, new_worker_id
from ._postgres_sql import (
    CLAIM_RUN,
    CLAIM_RUNS,
    DELETE_DEAD_AT_REGISTER,
    DELETE_EXPIRED,
    DELETE_WORKER,
    LIST_WORKERS,
    LIVE_WORKERS,
    REGISTER,
    REGISTER_LOCK,
    RELEASE,
    RELEASE_ALL,
    RENEW,
    RUN_OWNERS,
    UNCLAIMED_WORKFLOWS,
    UNREGISTER,
)
from ._records import RunStatus

log = logging.getLogger("wayline.store")
T = TypeVar("T")
Run = Callable[[Callable[[asyncpg.Connection], Awaitable[T]]], Awaitable[T]]


def _process_alive(pid: int) -> bool:
    """Whether a process with ``pid`` runs on this host (a reused pid counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, not ours to signal
        return True
    return True


class WorkerLeases:
    """This store's worker registration and the run leases it holds.

    Args:
        run: runs a function on a pooled connection, retrying on a new one if it is lost.
        url: the database, for messages.
        tag: the store's session tag (see `_postgres_sql.LIVE_WORKERS`).
        connect: opens the renewals' own connection (None: they use the pool). A worker
            loading hundreds of runs has every pooled connection busy reading them, and a
            renewal queued behind those reads took most of a short lease (0.6 s of a 1 s one
            with 2,000 runs started at once): on its own connection it waits for nobody.
    """

    def __init__(
        self, run: Run[Any], url: str, tag: str, connect: Callable[[], Awaitable[asyncpg.Connection]] | None = None
    ) -> None:
        self._run = run
        self._connect = connect
        self._own: asyncpg.Connection | None = None  # the renewals' connection, once opened
        self._own_lock = asyncio.Lock()
        self._own_failed = -float("inf")  # when it last failed (loop time): the pool for a lease then
        self._url = url
        self._tag = tag  # in the application_name of every connection of this store
        self.worker_id: str | None = None
        self.exclusive = False
        self.lease_seconds = 10.0
        self.held: dict[str, int] = {}  # run_id -> fence at the claim
        # Registrations begun, and under way: a claim that overlaps one claims again after it
        # (the registration gives up this worker's runs, before or after the claim commits).
        self.registrations = 0
        self.registering = 0
        # Held runs whose last commit finished them: still held (a redrive commits again under
        # the same lease), no longer counted as owned (see `owned`).
        self.finished: set[str] = set()
        self._heartbeat: asyncio.Task[None] | None = None
        self.lost_everything = False
        # What this worker's workflows listen to, as JSON (see `_event_listens_postgres`):
        # kept for a registration again after a lapsed lease.
        self.listens = "{}"

    async def register(
        self,
        worker_id: str | None,
        lease_seconds: float,
        exclusive: bool,
        listens: Mapping[str, Collection[str]] | None = None,
    ) -> WorkerInfo:
        wid = worker_id or new_worker_id()
        if listens is not None:
            self.listens = json.dumps({name: sorted(set(wfs)) for name, wfs in sorted(listens.items())})
        host, pid = socket.gethostname(), os.getpid()

        async def go(conn: asyncpg.Connection) -> WorkerInfo:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", REGISTER_LOCK)
                for other, ohost, opid, left, oexclusive in await conn.fetch(LIVE_WORKERS, wid):
                    if ohost == host and not _process_alive(opid):
                        # Its process on this host is gone; its sessions are still closing.
                        await conn.execute(DELETE_WORKER, other)
                    elif exclusive or oexclusive:
                        raise DatabaseOwnedByWorkerError(self._url, other, ohost, opid, float(left))
                await conn.execute(DELETE_DEAD_AT_REGISTER, wid)
                row = await conn.fetchrow(REGISTER, wid, host, pid, lease_seconds, exclusive, self._tag, self.listens)
                assert row is not None
                started, beat, until = row
                await conn.execute(RELEASE_ALL, wid)  # a previous incarnation's runs, if any
            return WorkerInfo(
                worker_id=wid,
                host=host,
                pid=pid,
                started_at=float(started),
                heartbeat_at=float(beat),
                lease_until=float(until),
            )

        # Forgotten before the registration gives the runs up, not after: a claim committed
        # after that release and noted here meanwhile must stay noted (the run is this
        # worker's in the database; forgetting it would refuse its commits while no other
        # worker may claim it from a live owner).
        self.held.clear()
        self.finished.clear()
        self.registrations += 1
        self.registering += 1
        try:
            info: WorkerInfo = await self._run(go)
        finally:
            self.registering -= 1
        self.worker_id, self.exclusive, self.lease_seconds = wid, exclusive, lease_seconds
        self.lost_everything = False
        return info

    async def renew(self) -> list[str]:
        """Extend the lease; the runs lost if the registration had been removed meanwhile."""
        wid = self.worker_id
        if wid is None:
            return []

        async def go(conn: asyncpg.Connection) -> Any:
            return await conn.fetchval(RENEW, wid, self.lease_seconds)

        if await self._renewing(go) is not None:
            return []
        # Our lease expired and another worker's claim or registration removed us: every run
        # we held may have changed hands. Register again (the runs still in our name are
        # released by it), unless an exclusive registration now stands in the way.
        lost = list(self.held)
        self.finished.clear()
        log.error(
            "worker %r lost its lease (it was not renewed within %gs) and with it %d run(s); "
            "their checkpoints from this worker are refused",
            wid,
            self.lease_seconds,
            len(lost),
        )
        self.held.clear()
        try:
            await self.register(wid, self.lease_seconds, self.exclusive)
        except DatabaseOwnedByWorkerError as exc:
            self.lost_everything = True
            log.error("worker %r cannot register again: %s", wid, exc)
        return lost

    async def _renewing(self, go: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """``go`` on the renewals' own connection (opened on first use, again after it is
        lost); on the pool if there is none, if it is in use, or if it fails (the pool
        retries a lost connection until the store's reconnect timeout)."""
        now = asyncio.get_running_loop().time()
        # After a failure the pool for a lease's time: a connection attempt to a server that
        # does not answer would hold up every renewal for the connect timeout first.
        if self._connect is not None and not self._own_lock.locked() and now - self._own_failed > self.lease_seconds:
            async with self._own_lock:
                try:
                    if self._own is None or self._own.is_closed():
                        self._own = await self._connect()
                    return await go(self._own)
                except Exception as exc:  # lost, or cannot connect now: the pool's retries
                    log.info("the lease renewal's own connection failed (%s); renewing through the pool", exc)
                    self._own_failed = now
                    await self._close_own()
        result: T = await self._run(go)
        return result

    async def _close_own(self) -> None:
        conn, self._own = self._own, None
        if conn is not None:
            conn.terminate()  # a failed or unwanted connection: no goodbye to wait for

    def owned(self) -> int:
        """The unfinished runs this worker holds, as this process knows them (no query: the
        `wayline.worker.runs_owned` gauge reads it at each collection)."""
        if not self.finished:
            return len(self.held)
        return sum(1 for run_id in self.held if run_id not in self.finished)

    def watch_commit(self, fut: asyncio.Future[None], run_id: str, finished: bool) -> None:
        """Count a checkpoint of a held run once it commits (``finished``: it ends the run);
        a refused one changes nothing (it raises to its caller)."""

        def done(f: asyncio.Future[None]) -> None:
            if f.cancelled() or f.exception() is not None or run_id not in self.held:
                return
            if finished:
                self.finished.add(run_id)
            else:
                self.finished.discard(run_id)

        fut.add_done_callback(done)

    def gauge_reader(self) -> Callable[[], tuple[str, int] | None]:
        """(worker id, `owned`) for the gauge, None while unregistered; it holds this object
        weakly (a meter provider outlives the stores it observes)."""
        ref = weakref.ref(self)

        def read() -> tuple[str, int] | None:
            leases = ref()
            if leases is None or leases.worker_id is None:
                return None
            return leases.worker_id, leases.owned()

        return read

    def start_heartbeat(self) -> None:
        if self._heartbeat is None:
            self._heartbeat = asyncio.ensure_future(self._beat())

    async def _beat(self) -> None:
        # A third of the lease: two renewals can fail (a slow server, a reconnect) before it lapses.
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                await self.renew()
            except Exception as exc:  # the store's retries are exhausted; try again next beat
                log.warning("worker %r could not renew its lease: %s", self.worker_id, exc)

    async def stop(self, unregister: bool) -> None:
        if self._heartbeat is not None:
            task, self._heartbeat = self._heartbeat, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._close_own()
        wid = self.worker_id
        if unregister and wid is not None:

            async def go(conn: asyncpg.Connection) -> None:
                await conn.execute(UNREGISTER, wid)

            await self._run(go)
        self.worker_id = None
        self.held.clear()
        self.finished.clear()

    def _require(self) -> str:
        if self.worker_id is None:
            raise RuntimeError("register_worker must come before claims")
        return self.worker_id

    async def claim_runs(
        self, limit: int, statuses: Collection[RunStatus] = CLAIMABLE, workflows: Collection[str] | None = None
    ) -> list[Lease]:
        wid = self._require()
        names = None if workflows is None else list(workflows)

        async def go(conn: asyncpg.Connection) -> list[Any]:
            async with conn.transaction():  # the expired workers first, as for `claim_run`
                await conn.execute(DELETE_EXPIRED)
                return list(await conn.fetch(CLAIM_RUNS, wid, [s.value for s in statuses], limit, names))

        await self._settled()
        registration = self.registrations
        rows = await self._run(go)
        out = [Lease(run_id, int(fence)) for run_id, fence in rows]
        if registration != self.registrations or self.registering:
            # Registered again meanwhile, which gave up this worker's runs, perhaps these:
            # each is claimed again, to hold what the database says (see `claim_run`).
            again = [await self.claim_run(lease.run_id) for lease in out]
            return [lease for lease in again if lease is not None]
        for lease in out:
            self.held[lease.run_id] = lease.fence
            self.finished.discard(lease.run_id)
        return out

    async def unclaimed_workflows(self, statuses: Collection[RunStatus], registered: Collection[str]) -> list[str]:
        async def go(conn: asyncpg.Connection) -> list[Any]:
            return list(await conn.fetch(UNCLAIMED_WORKFLOWS, [s.value for s in statuses], list(registered)))

        return [row[0] for row in await self._run(go)]

    async def _settled(self) -> None:
        """Until no registration of this worker is under way."""
        while self.registering:  # noqa: ASYNC110 - rare (a lapsed lease) and short
            await asyncio.sleep(0.005)

    async def claim_run(self, run_id: str) -> Lease | None:
        wid = self._require()
        if run_id in self.held:
            return Lease(run_id, self.held[run_id])

        async def go(conn: asyncpg.Connection) -> Any:
            async with conn.transaction():
                await conn.execute(DELETE_EXPIRED)
                return await conn.fetchval(CLAIM_RUN, wid, run_id)

        while True:
            await self._settled()
            registration = self.registrations
            fence = await self._run(go)
            if fence is None:
                return None
            if registration == self.registrations and not self.registering:
                break
            # Registered again while claiming: that registration gave up this worker's runs,
            # before or after this claim committed. Claimed again, the fence is the database's
            # (kept if the run is still this worker's, the next one if it was given up).
        self.held[run_id] = int(fence)
        return Lease(run_id, int(fence))

    async def release(self, run_ids: Collection[str]) -> None:
        wid = self.worker_id
        if wid is None:
            return
        ids = list(run_ids)
        for run_id in ids:
            self.held.pop(run_id, None)
            self.finished.discard(run_id)

        async def go(conn: asyncpg.Connection) -> None:
            await conn.execute(RELEASE, wid, ids)

        await self._run(go)

    def created(self, run_ids: list[str]) -> None:
        """Runs this worker created are its own, with fence 1 (see `BATCH`)."""
        for run_id in run_ids:
            self.held[run_id] = 1

    async def list_workers(self) -> list[WorkerInfo]:
        async def go(conn: asyncpg.Connection) -> list[Any]:
            return list(await conn.fetch(LIST_WORKERS))

        return [
            WorkerInfo(
                worker_id=wid,
                host=host,
                pid=pid,
                started_at=float(started),
                heartbeat_at=float(beat),
                lease_until=float(until),
                runs=int(runs),
            )
            for wid, host, pid, started, beat, until, runs in await self._run(go)
        ]

    async def run_owners(self, run_ids: Collection[str]) -> dict[str, str | None]:
        ids = list(run_ids)

        async def go(conn: asyncpg.Connection) -> list[Any]:
            return list(await conn.fetch(RUN_OWNERS, ids))

        owners: dict[str, str | None] = dict.fromkeys(ids)
        owners.update((run_id, owner) for run_id, owner in await self._run(go))
        return owners


class PgSubscription:
    """LISTEN on ``wayline_inbox`` and ``wayline_runs`` over a dedicated connection."""

    def __init__(self, connect: Callable[[], Awaitable[asyncpg.Connection]], listener: Listener) -> None:
        self._connect = connect
        self._listener = listener
        self._conn: asyncpg.Connection | None = None
        self._closed = False
        self._reconnect: asyncio.Task[None] | None = None

    async def open(self) -> None:
        await self._listen(await self._connect())

    async def _listen(self, conn: asyncpg.Connection) -> None:
        await conn.add_listener("wayline_inbox", self._on_inbox)
        await conn.add_listener("wayline_runs", self._on_runs)
        conn.add_termination_listener(self._on_lost)
        self._conn = conn

    def _on_inbox(self, conn: Any, pid: int, channel: str, payload: object) -> None:
        self._listener("inbox", str(payload))

    def _on_runs(self, conn: Any, pid: int, channel: str, payload: object) -> None:
        self._listener("runs", str(payload))

    def _on_lost(self, conn: Any) -> None:
        if not self._closed and self._reconnect is None:
            log.warning("the PostgreSQL notification connection was lost; reconnecting (polling meanwhile)")
            self._reconnect = asyncio.ensure_future(self._again())

    async def _again(self) -> None:
        delay = 0.05
        try:
            while not self._closed:
                try:
                    conn = await self._connect()
                except Exception:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 1.0)
                    continue
                if self._closed:
                    await conn.close()
                    return
                await self._listen(conn)
                self._listener("resync", "")
                return
        finally:
            self._reconnect = None

    async def close(self) -> None:
        self._closed = True
        if self._reconnect is not None:
            self._reconnect.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnect
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), timeout=5)
