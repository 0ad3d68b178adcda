"""The `Store` protocol: what the runtime needs from durable storage, and nothing more."""

from __future__ import annotations

from collections.abc import Awaitable, Collection, Sequence
from typing import Protocol, runtime_checkable

from ._leases import Lease, Listener, Subscription, WorkerInfo
from ._records import AnyEvent, InboxMessage, RunRecord, RunStatus


@runtime_checkable
class Store(Protocol):
    """Durable storage for runs.

    Contract:
      * ``checkpoint`` returns only after the snapshot and its events are durable, and commits
        both in one transaction. Concurrent checkpoints may share a transaction (group commit).
      * Values are encoded before a call returns or suspends, so an unencodable value raises
        `PayloadError` at the call site and the caller may mutate its objects afterwards.
      * Failures raise `StoreError` subclasses, never raw driver errors.
    """

    @property
    def pending(self) -> int:
        """Operations submitted and not yet completed (the virtual clock waits for zero)."""
        ...

    async def start(self) -> None:
        """Open, create or migrate the storage."""
        ...

    async def close(self) -> None:
        """Finish queued writes and release resources."""
        ...

    async def create_run(self, record: RunRecord, events: Sequence[AnyEvent]) -> RunRecord | None:
        """Insert a new run durably; if ``record.run_id`` exists, return the stored one instead."""
        ...

    def checkpoint(
        self, record: RunRecord, events: Sequence[AnyEvent], consumed: Sequence[int] = ()
    ) -> Awaitable[None]:
        """Replace the run's snapshot, append ``events`` (if any) as history row
        ``record.history_seq - 1`` and delete the ``consumed`` inbox messages; all in one
        transaction, so a message is consumed exactly when its effect is recorded. When
        ``record`` has finished, the same transaction deletes every message left for the
        run: nothing can consume them any more."""
        ...

    async def append_inbox(self, run_id: str, message: InboxMessage) -> int | None:
        """Commit ``message`` for ``run_id`` durably; returns its sequence number. Returns
        None, storing nothing, if the run does not exist or has finished (checked in the
        same transaction, so a message never outlives the run it is for)."""
        ...

    async def get_inbox(self, run_id: str) -> list[tuple[int, InboxMessage]]:
        """The run's unconsumed messages, oldest first."""
        ...

    async def inbox_since(self, seq: int, limit: int = 1000) -> list[tuple[int, str, InboxMessage]]:
        """Inbox messages of every run after ``seq``: (seq, run_id, message), oldest first.
        Lets a runtime pick up messages that another process committed."""
        ...

    async def due_runs(self, until: float, limit: int = 1000) -> list[tuple[str, float]]:
        """WAITING runs with a wait due at or before ``until``: (run_id, wake_at), earliest first."""
        ...

    async def next_wake(self, after: float) -> float | None:
        """The earliest due time of a WAITING run after ``after``, if any."""
        ...

    async def get_run(self, run_id: str) -> RunRecord | None: ...

    async def get_history(self, run_id: str) -> list[AnyEvent]:
        """The history rows in order, then the snapshot's ``tail``."""
        ...

    async def count_runs(self, statuses: Collection[RunStatus]) -> int:
        """How many runs have one of ``statuses`` (without reading them)."""
        ...

    async def list_runs(
        self,
        *,
        statuses: Collection[RunStatus] | None = None,
        workflow: str | None = None,
        since: float | None = None,
        newest_first: bool = False,
        limit: int | None = None,
    ) -> list[RunRecord]:
        """Runs filtered by status, workflow name and creation time (``created_at >= since``),
        oldest first (ordered by ``created_at``, then ``run_id``) or newest first; at most
        ``limit`` of them, and only those are read."""
        ...

    # --- workers and leases (several workers on one database; see _leases.py) -----------
    # A store with one owner (SQLite, memory) answers these trivially: every claim succeeds
    # with fence 0 and nothing is ever lost. On PostgreSQL they are the real thing.

    async def register_worker(
        self, worker_id: str | None = None, *, lease_seconds: float = 10.0, exclusive: bool = False
    ) -> WorkerInfo:
        """Register this store as a worker with a lease of ``lease_seconds`` (renewed by
        `renew_worker`); ``exclusive`` refuses if another live worker exists (and makes later
        workers refuse). A worker id registered again takes over what its earlier
        incarnation owned. Once registered, checkpoints are fenced: a run's write commits
        only while this worker holds its lease, else it fails with `LeaseLostError` (other
        writes in the same group commit are not affected)."""
        ...

    async def renew_worker(self) -> list[str]:
        """Extend this worker's lease. Returns the runs it lost (its lease had expired and
        it was removed); usually none."""
        ...

    async def claim_runs(self, limit: int, statuses: Collection[RunStatus] = ...) -> list[Lease]:
        """Claim up to ``limit`` runs of ``statuses`` (PENDING and RUNNING by default) that
        are unowned or whose owner's lease expired, oldest first, skipping runs another
        worker is claiming at the same moment; each claim increments the run's fence."""
        ...

    async def claim_run(self, run_id: str) -> Lease | None:
        """Claim one unfinished run (when its message or timer arrives here), unless a live
        worker owns it; this worker's own lease if it holds one already."""
        ...

    async def release_runs(self, run_ids: Collection[str]) -> None:
        """Give up the leases on ``run_ids`` (e.g. passivated runs): any worker may claim them."""
        ...

    async def list_workers(self) -> list[WorkerInfo]:
        """The registered workers, with the number of runs each owns."""
        ...

    async def subscribe(self, listener: Listener) -> Subscription:
        """Call ``listener`` when a message is committed for a run (``"inbox"``, run id) or runs
        are created (``"runs"``, count), from any process. Stores without a notification
        channel never call it: polling (`inbox_since`, `claim_runs`) is the fallback."""
        ...
