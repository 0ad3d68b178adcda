"""The `Store` protocol: what the runtime needs from durable storage, and nothing more."""

from __future__ import annotations

from collections.abc import Awaitable, Collection, Mapping, Sequence
from contextvars import ContextVar
from typing import Any, Literal, Protocol, runtime_checkable

import msgspec

from ._leases import Lease, Listener, Subscription, WorkerInfo
from ._records import AnyEvent, InboxMessage, RunRecord, RunStatus

#: True in a run's own task (and the tasks it starts). Writes there (checkpoints, and the
#: creates and inbox appends a run makes: child runs, cancels of its children) wait through an
#: outage of the database and go on once it accepts writes again, like the run itself. Anywhere
#: else a create or an inbox append fails fast with `StoreUnavailableError` instead, so that an
#: API caller learns at once that nothing was stored. A context variable rather than a
#: parameter: the runtime sets it once per run actor, not at every call.
WAIT_FOR_STORE: ContextVar[bool] = ContextVar("wayline_wait_for_store", default=False)


class StoreHealth(msgspec.Struct, frozen=True):
    """Whether the store accepts writes, as this process sees it.

    Attributes:
        status: ``"ok"``; ``"degraded"``: writes fail for a reason that may pass (disk full,
            an I/O error, a lock held too long): runs wait and go on once it passes, new
            runs and messages are refused at once; ``"failed"``: the database is gone (deleted
            or replaced), nothing more is accepted.
        cause: a short name for the reason: ``disk_full``, ``io_error``, ``locked``,
            ``read_only``, ``no_memory``, ``deleted`` (None when ok).
        reason: what is wrong and what to do about it (None when ok).
        since: when it began, in epoch seconds (None when ok, or when only observed).
        held: writes (mostly checkpoints of runs) held back, to be retried.
    """

    status: Literal["ok", "degraded", "failed"] = "ok"
    cause: str | None = None
    reason: str | None = None
    since: float | None = None
    held: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "ok"


HEALTHY = StoreHealth()


@runtime_checkable
class Store(Protocol):
    """Durable storage for runs.

    Contract:
      * ``checkpoint`` returns only after the snapshot and its events are durable, and commits
        both in one transaction. Concurrent checkpoints may share a transaction (group commit).
      * Values are encoded before a call returns or suspends, so an unencodable value raises
        `PayloadError` at the call site and the caller may mutate its objects afterwards.
      * Failures raise `StoreError` subclasses, never raw driver errors.
      * An outage that may pass (disk full, I/O error, a lock held too long) never fails a
        checkpoint: the checkpoint waits until the store accepts writes again, and `health`
        says why meanwhile. A create or an inbox append made outside a run
        (`WAIT_FOR_STORE` unset) fails at once with `StoreUnavailableError`, storing nothing.
    """

    @property
    def pending(self) -> int:
        """Operations submitted and not yet completed (the virtual clock waits for zero)."""
        ...

    async def start(self) -> None:
        """Open, create or migrate the storage."""
        ...

    def health(self) -> StoreHealth:
        """Whether writes succeed now, and if not why and since when."""
        ...

    async def close(self) -> None:
        """Finish queued writes and release resources."""
        ...

    async def create_run(
        self, record: RunRecord, events: Sequence[AnyEvent], message: InboxMessage | None = None
    ) -> RunRecord | None:
        """Insert a new run durably; if ``record.run_id`` exists, return the stored one instead.
        ``message`` is appended to the new run's inbox in the same transaction (a client's
        `StartMessage`: no run is left created with nothing to tell a worker about it)."""
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
        metadata: Mapping[str, Any] | None = None,
        tag: str | None = None,
    ) -> list[RunRecord]:
        """Runs filtered by status, workflow name, creation time (``created_at >= since``),
        metadata (every given key has the given value) and a tag, oldest first (ordered by
        ``created_at``, then ``run_id``) or newest first; at most ``limit`` of them, and only
        those are read. Metadata and tag filters are answered from the store's metadata
        index (see `_search`).

        Raises:
            MetadataError: a metadata or tag filter that is not searchable.
        """
        ...

    async def purge_runs(
        self,
        *,
        before: float,
        statuses: Collection[RunStatus] | None = None,
        workflow: str | None = None,
        limit: int | None = 200,
        dry_run: bool = False,
    ) -> list[str]:
        """Delete up to ``limit`` finished runs (of ``statuses``: every finished status by
        default; of ``workflow``, if given) that ended before ``before`` (epoch seconds), oldest
        first, in one transaction: each with its history, its inbox leftovers, its metadata
        index rows, its references to blobs, and the blobs no run refers to any more (see
        `_purge`). Returns the ids; with ``dry_run``, the ids it would delete, deleting nothing.

        Raises:
            ValueError: a status in ``statuses`` is not a finished one.
        """
        ...

    # --- workers and leases (several workers on one database; see _leases.py) -----------
    # A store with one owner (SQLite, memory) answers these trivially: every claim succeeds
    # with fence 0 and nothing is ever lost. On PostgreSQL they are the real thing.

    async def register_worker(
        self,
        worker_id: str | None = None,
        *,
        lease_seconds: float = 10.0,
        exclusive: bool = False,
        listens: Mapping[str, Collection[str]] | None = None,
    ) -> WorkerInfo:
        """Register this store as a worker with a lease of ``lease_seconds`` (renewed by
        `renew_worker`); ``exclusive`` refuses if another live worker exists (and makes later
        workers refuse). A worker id registered again takes over what its earlier
        incarnation owned. Once registered, checkpoints are fenced: a run's write commits
        only while this worker holds its lease, else it fails with `LeaseLostError` (other
        writes in the same group commit are not affected). ``listens`` maps each event name
        this worker's triggers and ``cancel_on`` listen to to the names of those workflows:
        an event is marked dispatched once every live worker listening to it has dispatched
        it (a store with one owner ignores it)."""
        ...

    async def renew_worker(self) -> list[str]:
        """Extend this worker's lease. Returns the runs it lost (its lease had expired and
        it was removed); usually none."""
        ...

    async def claim_runs(
        self, limit: int, statuses: Collection[RunStatus] = ..., *, workflows: Collection[str] | None = None
    ) -> list[Lease]:
        """Claim up to ``limit`` runs of ``statuses`` (PENDING and RUNNING by default) that
        are unowned or whose owner's lease expired, oldest first, skipping runs another
        worker is claiming at the same moment; each claim increments the run's fence.
        ``workflows``: only runs of these workflows (those the worker can run; None: any)."""
        ...

    async def unclaimed_workflows(self, statuses: Collection[RunStatus], registered: Collection[str]) -> list[str]:
        """The workflows, other than ``registered``, with runs of ``statuses`` that no live
        worker holds (runs waiting for a worker that has their workflow), sorted."""
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

    async def run_owners(self, run_ids: Collection[str]) -> dict[str, str | None]:
        """The id of the worker that owns each of ``run_ids``: None for a run that has finished,
        does not exist or is owned by no worker (it is claimed when one looks for work). An
        owner whose lease has lapsed is still named until another worker claims the run."""
        ...

    async def subscribe(self, listener: Listener) -> Subscription:
        """Call ``listener`` when a message is committed for a run (``"inbox"``, run id) or runs
        are created (``"runs"``, count), from any process. Stores without a notification
        channel never call it: polling (`inbox_since`, `claim_runs`) is the fallback."""
        ...
