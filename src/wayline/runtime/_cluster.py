"""`Cluster`: this worker's part in a database several workers share (PostgreSQL).

A worker registers with a lease and renews it in the background (`_heartbeat`); a worker that
stops renewing (killed, paused, cut off) loses its runs to the others once the lease expires,
and the store's fencing refuses its late checkpoints (the run is dropped here, see
`Runs.run_dropped`). A sweep claims the runs nobody holds (a dead worker's, and those a worker
at its ``max_runs`` gave up) a few times a second; the store's notifications wake the inbox
poller the moment a message (a client's `StartMessage` included) is committed for a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection, Mapping
from typing import Any

from .._errors import StoreError
from ..persistence import Store, Subscription
from ._runs import Runs

log = logging.getLogger("wayline.workers")

#: The sweep's period at most: a run given up by a worker at its limit waits no longer.
SWEEP_MAX = 0.5
#: A renewal later than this share of the lease after the one before is logged (renewals are
#: a third of the lease apart when nothing holds them up).
LATE = 0.6
#: How often a sweep looks for runs of workflows this worker does not have (to say so).
UNCLAIMED_EVERY = 10.0


class Cluster:
    """Registration, lease renewal, the sweep for unowned runs and the notifications.

    Args:
        store: the shared store (it has the worker and lease methods of `Store`).
        runs: this runtime's runs.
        poke: tells the inbox poller to read now (a message was committed somewhere).
        lease_seconds: the worker lease; renewed every third of it.
    """

    def __init__(self, store: Store, runs: Runs, poke: Any, *, lease_seconds: float) -> None:
        self._store = store
        self._runs = runs
        self._poke = poke
        self.lease_seconds = lease_seconds
        self.sweep_interval = min(SWEEP_MAX, lease_seconds / 4)
        self.worker_id: str | None = None
        self._sweep_now = asyncio.Event()
        self._tasks: list[asyncio.Future[None]] = []
        self._subscription: Subscription | None = None

    async def register(self, worker_id: str | None, listens: Mapping[str, Collection[str]]) -> str:
        """Register (``listens``: the workflows here that each event name triggers or
        cancels, so that an event is dispatched by every worker it concerns)."""
        info = await self._store.register_worker(
            worker_id, lease_seconds=self.lease_seconds, exclusive=False, listens=listens
        )
        self.worker_id = info.worker_id
        self._tasks.append(asyncio.ensure_future(self._heartbeat()))
        self._subscription = await self._store.subscribe(self._notified)
        return info.worker_id

    def start(self) -> None:
        """Begin sweeping (after recovery, which is the first sweep)."""
        self._tasks.append(asyncio.ensure_future(self._sweep()))

    def _notified(self, topic: str, what: str) -> None:
        if topic == "inbox":
            self._poke()
        elif topic == "resync":  # notifications were lost while reconnecting: look at everything
            self._poke()
            self._sweep_now.set()
        # "runs" (runs created): a worker runs what it creates, and a client's runs come with
        # a StartMessage, so only the periodic sweep looks for unowned ones.

    async def _heartbeat(self) -> None:
        loop = asyncio.get_running_loop()
        renewed = loop.time()
        while True:
            due = loop.time() + self.lease_seconds / 3
            await asyncio.sleep(self.lease_seconds / 3)
            woke = loop.time()
            try:
                lost = await self._store.renew_worker()
            except Exception as exc:  # the store retries on its own; try again next beat
                log.warning("worker %r could not renew its lease: %s", self.worker_id, exc)
                continue
            now = loop.time()
            gap, renewed = now - renewed, now
            if gap > self.lease_seconds * LATE:
                log.warning(
                    "worker %r renewed its lease %.2fs after the previous renewal (lease %gs; the beat "
                    "woke %.2fs late, the renewal took %.2fs): its event loop or the store was busy; "
                    "past the lease its runs go to other workers",
                    self.worker_id,
                    gap,
                    self.lease_seconds,
                    woke - due,
                    now - woke,
                )
            if lost:
                # Their next checkpoints are refused (and the runs dropped): the new owners
                # go on from their last commits.
                log.error(
                    "worker %r lost its lease and %d run(s) with it; they continue on other workers",
                    self.worker_id,
                    len(lost),
                )

    async def _sweep(self) -> None:
        runs = self._runs
        shares = runs.shares
        assert shares is not None  # a cluster's runs are shared
        loop = asyncio.get_running_loop()
        looked = loop.time()  # at recovery
        while not runs.closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._sweep_now.wait(), self.sweep_interval)
            self._sweep_now.clear()
            try:
                await shares.wake_deferred()  # runs with messages first: they were due already
                while await shares.claim_some("claimed: its worker stopped, or gave it up") > 0:
                    pass
                if runs.passivate_after is not None:
                    await runs.wake_due_now()  # timers of runs a dead worker had passivated
                if loop.time() - looked >= UNCLAIMED_EVERY:
                    looked = loop.time()
                    await shares.unclaimed()
            except StoreError as exc:
                log.warning("the sweep for unowned runs failed (%s); it runs again in %gs", exc, self.sweep_interval)
            except Exception:
                log.exception("the sweep for unowned runs failed; it runs again in %gs", self.sweep_interval)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._subscription is not None:
            sub, self._subscription = self._subscription, None
            with contextlib.suppress(Exception):
                await sub.close()
