"""Throttle and debounce as stored (``store.pacing``): the runs a `Throttle` holds back
and the state of each key's pace, and the runs a `Debounce` holds until their key is quiet.

A throttle keeps one number per group (the workflow's name) and key: the theoretical
arrival time of its next start (GCRA). A start is allowed while that time is no further
ahead of now than the burst tolerance; each start pushes it on by ``period / limit``. So
starts are spread ``period / limit`` apart, ``burst`` more may start at once after a quiet
spell, and no window of ``period`` seconds holds more than ``limit + burst`` starts. The
queue and that number change in one transaction (under the key's lock on PostgreSQL), so
the pace holds across workers and restarts.

A debounce keeps one row per group and key while a burst goes on: the QUEUED run that
will start, the time of the burst's first start and the time it is due.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import msgspec


class Throttled(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A run in a throttle's queue (``seq`` is given by the store), with the pace it was
    queued under (what ``describe`` reports, even where the workflow is not registered)."""

    run_id: str
    group: str
    key: str
    priority: int = 0
    limit: int = 0
    period: float = 0.0
    burst: int = 0
    seq: int = 0


class ThrottlePosition(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Where a throttled run stands: its entry, the runs ahead of it and the key's
    theoretical arrival time (None before its first start)."""

    entry: Throttled
    ahead: int
    tat: float | None


class Debounced(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A debounce going on for a key: the run it will start, since when, until when, and
    how many starts it took in."""

    run_id: str
    group: str
    key: str
    first_at: float
    due_at: float
    count: int = 1


class DebouncePush(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """What a start under a debounce became: ``run_id`` (the pending run, ``created`` if
    the caller's own id was taken for it, so the caller creates that run), its new due time,
    and ``due`` (a run of the key that was due and not yet started: the caller starts it)."""

    run_id: str
    created: bool
    due_at: float
    due: str | None = None


def pace(tat: float | None, now: float, limit: int, period: float, burst: int) -> tuple[bool, float]:
    """GCRA: (whether a start is allowed at ``now``, the arrival time after it if so, else
    the time the next start is allowed)."""
    interval = period / limit
    tolerance = burst * interval
    at = now if tat is None or tat < now else tat
    if at - now > tolerance:
        return False, at - tolerance
    return True, at + interval


def push(row: Debounced | None, run_id: str, now: float, period: float, max_wait: float | None) -> DebouncePush:
    """A start under a debounce, given the key's row (see `DebouncePush`)."""
    if row is not None and row.due_at > now:
        due = now + period
        if max_wait is not None:
            due = min(due, row.first_at + max_wait)
        return DebouncePush(run_id=row.run_id, created=False, due_at=due)
    due = now + period if max_wait is None else min(now + period, now + max_wait)
    return DebouncePush(run_id=run_id, created=True, due_at=due, due=None if row is None else row.run_id)


@runtime_checkable
class PacingStore(Protocol):
    """Where a store keeps throttles and debounces (``store.pacing``)."""

    async def throttle_enqueue(self, entry: Throttled) -> None:
        """Queue ``entry`` behind its key's throttle; nothing if it is queued already."""
        ...

    async def throttle_admit(
        self, group: str, key: str, limit: int, period: float, burst: int, now: float
    ) -> tuple[list[str], float | None]:
        """Let go from the key's queue (priority, then arrival order) every run its pace
        allows at ``now``, in one transaction: their ids, and when the next is allowed (None
        when the queue is empty). A run let go stays, marked passed, until `throttle_done`."""
        ...

    async def throttle_queues(self) -> list[tuple[str, str]]:
        """Every (group, key) with runs in its throttle queue."""
        ...

    async def throttle_passed(self) -> list[str]:
        """The runs a throttle let go whose next stage is not yet known to have taken them
        (a crash in between): they go on without counting again."""
        ...

    async def throttle_done(self, run_id: str) -> None:
        """The run's next stage has it (it is queued for a slot, or started): forget it."""
        ...

    async def throttle_position(self, run_id: str) -> ThrottlePosition | None:
        """Where a run stands in its throttle queue (None: it is not there)."""
        ...

    async def debounce(
        self, group: str, key: str, run_id: str, now: float, period: float, max_wait: float | None
    ) -> DebouncePush:
        """A start of run ``run_id`` under the key's debounce, in one transaction (`push`)."""
        ...

    async def take_due(self, now: float) -> list[str]:
        """Take the debounces due at ``now`` off the table: their runs, to be started."""
        ...

    async def next_due(self) -> float | None:
        """The earliest due time of a debounce going on."""
        ...

    async def debounced(self, run_id: str) -> Debounced | None:
        """The debounce that holds run ``run_id``, if any."""
        ...

    async def held(self) -> set[str]:
        """Every run a throttle queue (passed or not) or a debounce holds."""
        ...

    async def withdraw(self, run_id: str) -> bool:
        """Take the run out of its throttle queue or debounce: whether it was there."""
        ...
