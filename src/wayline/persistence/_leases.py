"""Workers, run leases and change notifications: the part of the `Store` protocol that lets
several worker processes share one database.

On PostgreSQL each unfinished run has an owner (a registered worker) and a fencing counter
that every claim increments; a checkpoint commits only while the run's owner and counter are
still the ones the worker claimed. A SQLite database has exactly one owner (the process that
holds its flock), so there every claim succeeds and nothing is ever fenced: `SingleOwner`
gives the SQLite and in-memory stores those trivial versions, so the runtime talks to one
protocol whatever the store.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from typing import Any, Literal, Protocol

import msgspec

from ._records import ACCEPTING, UNFINISHED, RunRecord, RunStatus

#: What a claim sweep takes by default: runs that should be executing. WAITING runs are
#: claimed one at a time (`claim_run`) by the worker that gets their message or timer.
CLAIMABLE: tuple[RunStatus, ...] = (RunStatus.PENDING, RunStatus.RUNNING)

Topic = Literal["inbox", "runs", "resync"]
#: Called with ("inbox", run_id) when a message for the run was committed, ("runs", count)
#: when new runs were created, and ("resync", "") after the listening connection was lost and
#: made again (notifications sent meanwhile are gone: read the store once).
Listener = Callable[[Topic, str], None]


class Lease(msgspec.Struct, frozen=True, gc=False):
    """A worker's claim on one run. ``fence`` is the run's fencing counter at the claim:
    the store commits the run's checkpoints only while it is unchanged."""

    run_id: str
    fence: int


class WorkerInfo(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A registered worker, as `Store.list_workers` reports it (times are epoch seconds)."""

    worker_id: str
    host: str
    pid: int
    started_at: float
    heartbeat_at: float
    lease_until: float
    runs: int = 0  # runs it owns now


class Subscription(Protocol):
    """A live subscription to a store's notifications; `close` ends it."""

    async def close(self) -> None: ...


def new_worker_id() -> str:
    """A worker id unique to this process and this registration: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class _NoSubscription:
    async def close(self) -> None:
        return None


class _Readable(Protocol):
    async def get_run(self, run_id: str) -> RunRecord | None: ...

    async def list_runs(
        self,
        *,
        statuses: Collection[RunStatus] | None = None,
        workflow: str | None = None,
        since: float | None = None,
        newest_first: bool = False,
        limit: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        tag: str | None = None,
    ) -> list[RunRecord]: ...


class SingleOwner:
    """The lease methods of a store with one owner (SQLite, memory): that owner holds every
    run, so claims always succeed with fence 0, nothing is ever fenced or lost, and other
    processes' writes are found by polling (there is no notification channel)."""

    def _single_state(self) -> tuple[dict[str, WorkerInfo], set[str]]:
        state = self.__dict__.get("_wayline_single")
        if state is None:
            state = self.__dict__["_wayline_single"] = ({}, set())
        return state

    async def register_worker(
        self,
        worker_id: str | None = None,
        *,
        lease_seconds: float = 10.0,
        exclusive: bool = False,
        listens: Mapping[str, Collection[str]] | None = None,  # one owner: it dispatches everything
    ) -> WorkerInfo:
        """Register this store as the database's worker (see `Store.register_worker`)."""
        workers, _ = self._single_state()
        now = time.time()
        info = WorkerInfo(
            worker_id=worker_id or new_worker_id(),
            host=socket.gethostname(),
            pid=os.getpid(),
            started_at=now,
            heartbeat_at=now,
            lease_until=float("inf"),
        )
        workers.clear()
        workers[info.worker_id] = info
        return info

    async def renew_worker(self) -> list[str]:
        """Nothing to renew: the one owner cannot lose a run."""
        return []

    async def claim_runs(
        self: _Readable,
        limit: int,
        statuses: Collection[RunStatus] = CLAIMABLE,
        *,
        workflows: Collection[str] | None = None,
    ) -> list[Lease]:
        """The runs of ``statuses`` (of ``workflows``) this store has not handed out yet, at
        most ``limit``."""
        _, claimed = SingleOwner._single_state(self)  # type: ignore[arg-type]
        out: list[Lease] = []
        for rec in await self.list_runs(statuses=statuses):
            if len(out) >= limit:
                break
            if workflows is not None and rec.workflow not in workflows:
                continue
            if rec.run_id not in claimed:
                claimed.add(rec.run_id)
                out.append(Lease(rec.run_id, 0))
        return out

    async def unclaimed_workflows(
        self: _Readable, statuses: Collection[RunStatus], registered: Collection[str]
    ) -> list[str]:
        """The workflows other than ``registered`` with runs of ``statuses`` not handed out."""
        _, claimed = SingleOwner._single_state(self)  # type: ignore[arg-type]
        found = {
            rec.workflow
            for rec in await self.list_runs(statuses=statuses)
            if rec.workflow not in registered and rec.run_id not in claimed
        }
        return sorted(found)

    async def claim_run(self: _Readable, run_id: str) -> Lease | None:
        """The run's lease if it exists and has not finished."""
        rec = await self.get_run(run_id)
        if rec is None or rec.status not in UNFINISHED:
            return None
        SingleOwner._single_state(self)[1].add(run_id)  # type: ignore[arg-type]
        return Lease(run_id, 0)

    async def release_runs(self, run_ids: Collection[str]) -> None:
        """Forget the claims on ``run_ids`` (a later `claim_runs` hands them out again)."""
        self._single_state()[1].difference_update(run_ids)

    async def list_workers(self) -> list[WorkerInfo]:
        """This store's registration, if any (with the runs it has claimed)."""
        workers, claimed = self._single_state()
        return [msgspec.structs.replace(w, runs=len(claimed)) for w in workers.values()]

    async def run_owners(self: _Readable, run_ids: Collection[str]) -> dict[str, str | None]:
        """This store's worker for each unfinished run of ``run_ids`` (the one owner holds
        them all), if this store registered as the worker; else None for every run."""
        workers, _ = SingleOwner._single_state(self)  # type: ignore[arg-type]
        owner = next(iter(workers), None)
        out: dict[str, str | None] = dict.fromkeys(run_ids)
        if owner is not None:
            for run_id in out:
                rec = await self.get_run(run_id)
                if rec is not None and rec.status in ACCEPTING:
                    out[run_id] = owner
        return out

    async def subscribe(self, listener: Listener) -> Subscription:
        """A subscription that never fires: with one owner, the writes of other processes
        (`wayline` commands, clients) are found by polling the inbox."""
        return _NoSubscription()
