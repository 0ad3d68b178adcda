"""Retention: finished runs older than a workflow's ``retention=`` (or the runtime's) are
purged in the background, in small batches; ``rt.purge(...)`` does the same on demand.

Each batch is one short transaction of the store (`Store.purge_runs`: at most 200 runs, with
their history, inbox leftovers, metadata index rows and blobs no run needs any more), and the
purge yields to the event loop between batches: checkpoints queued meanwhile go in the next
group commit, not after the whole purge. Deleted pages are reused by later runs, so a service
at a steady load keeps a database file of a steady size.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from datetime import timedelta
from typing import Any

from ..actors import Clock
from ..persistence import RunStatus, Store

log = logging.getLogger("wayline")

#: Runs per purge transaction (see `wayline.persistence._purge.BATCH`).
BATCH = 200
#: Seconds between background purge passes, by default.
DEFAULT_INTERVAL = 60.0


def retention_seconds(value: float | timedelta | None, what: str) -> float | None:
    """A retention given as seconds or a timedelta, checked; None keeps runs forever.

    Raises:
        ValueError: not a positive duration.
    """
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
        raise ValueError(
            f"{what} must be a positive number of seconds or a timedelta (or None: keep runs), got {value!r}"
        )
    return float(seconds)


async def purge(
    store: Store,
    *,
    before: float,
    statuses: Collection[RunStatus] | None = None,
    workflow: str | None = None,
    dry_run: bool = False,
) -> int:
    """Purge every matching finished run, a batch at a time; how many (would) go."""
    if dry_run:
        return len(
            await store.purge_runs(before=before, statuses=statuses, workflow=workflow, limit=None, dry_run=True)
        )
    total = 0
    while True:
        done = await store.purge_runs(before=before, statuses=statuses, workflow=workflow, limit=BATCH)
        total += len(done)
        if len(done) < BATCH:
            return total
        await asyncio.sleep(0)  # the checkpoints queued meanwhile go first


class Retention:
    """The background purge of one runtime: per workflow name, how long finished runs stay."""

    def __init__(self, store: Store, clock: Clock, by_workflow: dict[str, float], interval: float) -> None:
        self._store = store
        self._clock = clock
        self._by_workflow = by_workflow
        self._interval = interval
        self.purged = 0

    @property
    def active(self) -> bool:
        return bool(self._by_workflow)

    async def run(self) -> None:
        """Purge once per interval, until cancelled; a failed pass is logged and retried."""
        while True:
            await self._clock.sleep(self._interval)
            try:
                await self.pass_once()
            except Exception as exc:  # the store may be down for a while: the next pass tries again
                log.warning("retention: a purge pass failed (%s); it is tried again in %ss", exc, self._interval)

    async def pass_once(self) -> int:
        now = self._clock.time()
        done = 0
        for name, keep in self._by_workflow.items():
            done += await purge(self._store, before=now - keep, workflow=name)
        self.purged += done
        return done


def plan(workflows: Any, default: float | None) -> dict[str, float]:
    """Retention per registered workflow name: its own ``retention=``, else ``default``."""
    out: dict[str, float] = {}
    for wf in workflows:
        own = getattr(wf, "retention", None)
        keep = own if own is not None else default
        if keep is not None:
            out[wf.name] = min(keep, out.get(wf.name, keep))
    return out
