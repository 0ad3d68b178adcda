"""Flow control as stored: the queue of runs held back by a concurrency limit, and the slots
of the runs that hold one (``store.flow``).

A run of a workflow with ``concurrency=`` is created QUEUED and put in the queue of its
group (the workflow's name, or one shared name for ``scope="key"``) and key, with its
priority and the limit it counts against. Admission is one transaction per group and key:
while fewer runs hold slots than the limit of the queue's head (highest priority, then
oldest), the head moves from the queue to a slot. A run gives its slot back when it ends.
The slots are rows, so a limit holds across restarts and across workers sharing a database.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import msgspec


class QueuedRun(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A run in the queue, or holding a slot (``seq`` 0, ``priority`` 0)."""

    run_id: str
    group: str
    key: str
    priority: int = 0
    limit: int = 0
    seq: int = 0


class Position(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Where a queued run stands: its queue entry, how many runs are ahead of it, and how
    many hold the slots of its key."""

    entry: QueuedRun
    ahead: int
    running: int


@runtime_checkable
class FlowStore(Protocol):
    """Where a store keeps the queues and slots of flow control (``store.flow``)."""

    async def enqueue(self, entry: QueuedRun) -> None:
        """Queue ``entry`` (its seq is given by the store); nothing if the run is queued or
        holds a slot already."""
        ...

    async def admit(self, group: str, key: str) -> list[str]:
        """Move the queue's head into a slot while the slots held are under its limit, in
        one transaction; the run ids admitted, in order."""
        ...

    async def release(self, run_id: str) -> tuple[str, str] | None:
        """Give back the run's slot, or take it out of its queue; its (group, key) if it had either."""
        ...

    async def withdraw(self, run_id: str) -> bool:
        """Take the run out of its queue, never out of a slot: whether it was queued. A run
        admitted meanwhile (by another admission: the poller's, another worker's) keeps its
        slot and starts."""
        ...

    async def slots(self) -> list[QueuedRun]:
        """Every run holding a slot."""
        ...

    async def stalled(self) -> list[str]:
        """The runs holding a slot that are still QUEUED: admitted, and their start failed
        or has not happened yet (a worker killed between the two, a claim refused while
        another worker held the run for a moment). One indexed query, cheap enough for
        every beat of the poller: the slots are few (the sum of the limits in use)."""
        ...

    async def take_rate(self, group: str, key: str, limit: int, period: float, now: float, run_id: str) -> float | None:
        """Count the start of run ``run_id`` for ``group``/``key`` if fewer than ``limit``
        were counted in the ``period`` seconds before ``now`` (one transaction); None if
        counted (or counted before: a run counts once), else the seconds until one more
        would be."""
        ...

    async def holders(self, group: str, key: str) -> list[str]:
        """The runs holding the slots of ``group``/``key``."""
        ...

    async def queues(self) -> list[tuple[str, str]]:
        """Every (group, key) with runs in its queue."""
        ...

    async def position(self, run_id: str) -> Position | None:
        """Where the run stands in its queue (None: it is not queued)."""
        ...
