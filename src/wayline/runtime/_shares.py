"""`Shares`: this worker's share of the runs of a database several workers share (PostgreSQL).

A run enters memory here only under this worker's claim on it (`adopt`: a sweep's claims, a
wake's), and leaves it given back (`release`: passivated, QUEUED, dropped), so that whichever
worker gets its message or its timer can take it. `Runs` owns the table of runs in memory;
this is the part of it that only a shared database needs.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from .._errors import DatabaseCorruptError, EncryptionKeyError, SecretDecryptError
from ..persistence import RunRecord, RunStatus, Store

log = logging.getLogger("wayline")

#: Runs claimed at once by a sweep (and by recovery), as `_runs.RECOVERY_WAVE` loads them.
CLAIM_WAVE = 250
#: Wakes a full worker remembers at most (the newest). A full worker sees every message, most
#: of them for runs its peers hold, and each remembered wake costs a claim once it has room;
#: one forgotten (only past this many) waits for the next message for its run, or a restart.
DEFERRED_MAX = 1000


class Runs(Protocol):
    """What of `_runs.Runs` this part uses: the table of runs in memory and its settings."""

    store: Store
    closed: bool
    max_runs: int | None
    passivate_after: float | None
    _refs: dict[str, Any]
    _registry: Any
    _passivated: int

    def spawn(self, record: RunRecord, reason: str | None) -> None: ...

    async def _queued_message(self, rec: RunRecord) -> None: ...

    async def _until_loaded(self, wave: list[str]) -> None: ...


class Shares:
    """Claims, loads and gives back the runs of a shared database for `Runs`."""

    def __init__(self, runs: Runs) -> None:
        self._runs = runs
        self._unreadable: set[str] = set()  # claimed runs this worker could not read (logged once)
        self._releasing: dict[str, asyncio.Future[None]] = {}  # passivated runs being given up
        self._waking: dict[str, asyncio.Future[None]] = {}  # runs being woken
        self._unknown: set[str] = set()  # workflows not registered here whose runs wait (logged)
        # Runs a message woke while this worker was at its ``max_runs``, with the reason: the
        # sweep wakes them again once there is room (see `wake_deferred`).
        self._deferred: dict[str, str] = {}

    def passivated(self, run_id: str) -> None:
        """Give back a run that left memory while waiting (in the background)."""
        self._releasing[run_id] = asyncio.ensure_future(self.release(run_id))

    def releasing(self) -> list[asyncio.Future[None]]:
        """The releases under way (ended by `Runs.close`)."""
        return list(self._releasing.values())

    async def recover(self) -> int:
        """Claim and load the runs no live worker holds, in waves, up to ``max_runs``."""
        runs = self._runs
        total = 0
        await self.unclaimed()
        while not runs.closed:
            n = await self.claim_some("recovered: claimed after its worker stopped")
            total += n
            if n == 0 or (runs.max_runs is not None and len(runs._refs) >= runs.max_runs):
                break
        return total

    async def wake(self, run_id: str, reason: str) -> None:
        """`Runs.wake` on a shared database: one at a time per run (a message is often
        delivered twice: by its sender and by the poller on its notification); a second wake
        that gave up a QUEUED run while the first was ending it would take the run from under
        the first."""
        while (busy := self._waking.get(run_id)) is not None:
            await asyncio.shield(busy)
        done = self._waking[run_id] = asyncio.get_running_loop().create_future()
        try:
            await self._wake(run_id, reason)
        finally:
            del self._waking[run_id]
            done.set_result(None)

    def _full(self) -> bool:
        runs = self._runs
        return runs.max_runs is not None and len(runs._refs) >= runs.max_runs

    async def wake_deferred(self) -> None:
        """Wake the runs a message woke while this worker was full, while it has room (each
        sweep). One another worker took meanwhile, or that ended, is not claimed here."""
        for run_id, reason in list(self._deferred.items()):
            if self._full() or self._runs.closed:
                return
            del self._deferred[run_id]
            await self.wake(run_id, reason)

    async def release(self, run_id: str) -> None:
        """Give the run back in the database: any worker may claim it (logged if this fails:
        its lease then lapses with this worker's, or the next claim by this worker keeps it)."""
        try:
            await self._runs.store.release_runs([run_id])
        except Exception as exc:  # its lease lapses with this worker's, or the next claim takes it
            log.warning("run %s could not be released: %s", run_id, exc, extra={"run_id": run_id})
        finally:
            self._releasing.pop(run_id, None)

    async def _wake(self, run_id: str, reason: str) -> None:
        """`wake` on a database several workers share: the run is loaded only if this worker
        can claim it (nobody holds it, or its holder's lease expired), and not past
        ``max_runs`` (then another worker's sweep takes it)."""
        runs = self._runs
        if self._full():
            # Another worker with room may take it now; if none does (all full, or this
            # worker still held the run, passivated a moment ago, when they tried), nothing
            # else would: the message has been delivered, and a sweep claims no waiting run.
            self._deferred.pop(run_id, None)  # the newest last
            self._deferred[run_id] = reason
            if len(self._deferred) > DEFERRED_MAX:
                del self._deferred[next(iter(self._deferred))]
            return
        self._deferred.pop(run_id, None)
        releasing = self._releasing.get(run_id)
        if releasing is not None:
            # Passivated here a moment ago: claimed again only once given up, or the release
            # would take the run from under its new incarnation.
            await asyncio.shield(releasing)
        # The claim first (one statement; it fails for a finished run, or one a live worker
        # holds: most messages a worker sees are for its peers' runs), then the record.
        if await runs.store.claim_run(run_id) is None or run_id in runs._refs:
            return
        rec = await runs.store.get_run(run_id)
        if rec is not None and rec.status is RunStatus.QUEUED:
            await runs._queued_message(rec)  # it starts when its queue admits it, not now
            await runs.store.release_runs([run_id])
            return
        await self.adopt([run_id], reason, [rec])

    async def adopt(self, run_ids: list[str], reason: str, records: list[RunRecord | None] | None = None) -> list[str]:
        """Load runs this worker has just claimed (a sweep, a wake), read under the claim
        unless ``records`` were; the ids loaded. One that ended, is QUEUED or cannot run here
        is given back."""
        runs = self._runs
        loaded: list[str] = []
        give_back: list[str] = []
        if records is None:
            records = await asyncio.gather(*(self._read(run_id) for run_id in run_ids))
        for run_id, rec in zip(run_ids, records, strict=True):
            if run_id in runs._refs:
                continue
            if runs.closed or rec is None or rec.status.finished or rec.status is RunStatus.QUEUED:
                give_back.append(run_id)
                continue
            if rec.workflow not in runs._registry:  # woken by a message: another worker's to run
                self.unknown(rec.workflow)
                give_back.append(run_id)
                continue
            if runs._passivated and rec.status is RunStatus.WAITING:
                runs._passivated -= 1
            runs.spawn(rec, reason)
            loaded.append(run_id)
        if give_back and not runs.closed:
            await runs.store.release_runs(give_back)
        return loaded

    async def _read(self, run_id: str) -> RunRecord | None:
        """A claimed run's record; None (it is given back) if this worker cannot read it: a
        damaged snapshot, or a Secret sealed with a key it was not given. Logged once per run."""
        runs = self._runs
        try:
            return await runs.store.get_run(run_id)
        except (DatabaseCorruptError, EncryptionKeyError, SecretDecryptError) as exc:
            if run_id not in self._unreadable:
                self._unreadable.add(run_id)
                log.error("%s; this worker leaves the run to others", exc, extra={"run_id": run_id})
            return None

    def _statuses(self) -> list[RunStatus]:
        """The statuses of the runs a sweep claims: waiting runs too unless runs passivate
        (then their message or timer brings them back)."""
        statuses = [RunStatus.PENDING, RunStatus.RUNNING]
        if self._runs.passivate_after is None:
            statuses.append(RunStatus.WAITING)
        return statuses

    async def unclaimed(self) -> None:
        """Log, once per workflow, that runs of a workflow not registered here wait for a
        worker that has it (this worker's sweeps leave them alone)."""
        runs = self._runs
        for name in await runs.store.unclaimed_workflows(self._statuses(), runs._registry.names()):
            self.unknown(name)

    def unknown(self, name: str) -> None:
        """Say once that runs of workflow ``name`` (not registered here) wait for another worker."""
        if name not in self._unknown:
            self._unknown.add(name)
            log.warning(
                "runs of workflow %r wait for a worker that registers it; this worker (with %s) "
                "leaves them to such a worker",
                name,
                ", ".join(repr(n) for n in self._runs._registry.names()) or "no workflows",
            )

    async def claim_some(self, reason: str, limit: int | None = None) -> int:
        """Claim and load unowned and orphaned runs (of workers whose lease expired), up to
        ``max_runs`` in memory; how many were loaded. Waiting runs are claimed too unless
        runs passivate (then their message or timer brings them back)."""
        runs = self._runs
        room = CLAIM_WAVE if runs.max_runs is None else runs.max_runs - len(runs._refs)
        if limit is not None:
            room = min(room, limit)
        if room <= 0 or runs.closed:
            return 0
        # Only runs of the workflows registered here: another's would be claimed and given
        # back at every sweep (`unclaimed` says once that they wait for another worker).
        leases = await runs.store.claim_runs(room, self._statuses(), workflows=runs._registry.names())
        if not leases:
            return 0
        loaded = await self.adopt([lease.run_id for lease in leases], reason)
        await runs._until_loaded(loaded)
        return len(loaded)
