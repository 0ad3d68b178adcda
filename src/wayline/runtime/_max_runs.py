"""``open_runtime(max_runs=N)`` on a store with one owner (SQLite, memory): at most N runs of
this runtime hold a runtime slot at once; the others wait QUEUED, durably, in arrival order
(priority first, for a workflow that declares one).

The runtime's slots are flow-control slots of their own group (`GROUP`), in the same store
tables as the queues of ``Concurrency`` limits. A run has one row in each table at most, so
its runtime entry is kept under a second id, `entry_id` (``wayline.max_runs:<run id>``).

What counts: a run from its start to its end, waiting ones included (as ``Concurrency``'s
default ``count_waiting=True``; a run of a ``Concurrency(count_waiting=False)`` workflow gives
its runtime slot back with its key's while it waits, and takes both again in the same
order), except child runs, which execute on their parent's account
(a parent waiting for its child holds a slot; were the child to need one too, ``max_runs``
parents could wait for children that never start). A run of a workflow with a
``Concurrency`` limit takes its key's slot first, then a runtime slot: it starts holding both.
Runs created before the runtime had ``max_runs`` (or by a client, ``worker=False``) do not
count. With ``max_runs=None`` nothing here runs.

On PostgreSQL ``max_runs`` keeps its meaning: the runs one worker holds in memory (`_shares`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ..persistence import FlowStore, QueuedRun, RunRecord

#: The flow group of the runtime's slots, and the prefix of a run's entry id in it.
GROUP = "wayline.max_runs"
PREFIX = GROUP + ":"
#: Metadata of a run created under ``max_runs`` (it needs a runtime slot to start).
CAPPED_KEY = "wayline.max_runs"
PRIORITY_KEY = "wayline.priority"


def entry_id(run_id: str) -> str:
    """The id of a run's entry in the runtime's queue and slots."""
    return PREFIX + run_id


def real_id(flow_id: str) -> str:
    """The run a flow-control id stands for (the id itself, unless a runtime entry's)."""
    return flow_id[len(PREFIX) :] if flow_id.startswith(PREFIX) else flow_id


class MaxRuns:
    """The runtime's limit on runs at once (see the module docstring).

    Args:
        table: the store's flow table.
        limit: ``max_runs``.
        admit: `Flow.admit` (starts the runs admitted).
    """

    def __init__(self, table: FlowStore, limit: int, admit: Callable[[str, str], Awaitable[list[str]]]) -> None:
        self._table = table
        self.limit = limit
        self._admit = admit

    def entry(self, record: RunRecord) -> QueuedRun:
        """The run's entry in the runtime's queue."""
        priority = record.metadata.get(PRIORITY_KEY, 0)
        return QueuedRun(
            run_id=entry_id(record.run_id),
            group=GROUP,
            key="",
            priority=priority if isinstance(priority, int) else 0,
            limit=self.limit,
        )

    async def request(self, record: RunRecord) -> None:
        """Queue a QUEUED run for a runtime slot (nothing if queued or holding one) and admit
        the runtime's queue: the run starts now if a slot is free."""
        await self._table.enqueue(self.entry(record))
        await self._admit(GROUP, "")

    async def holds(self, run_id: str) -> bool:
        """Whether the run holds a runtime slot."""
        return entry_id(run_id) in await self._table.holders(GROUP, "")

    async def withdraw(self, run_id: str) -> bool:
        """Take a QUEUED run out of the runtime's queue; whether it was there."""
        return await self._table.withdraw(entry_id(run_id))

    async def finished(self, run_id: str) -> None:
        """The run ended (or never started): give its runtime slot back, admit the next."""
        if await self._table.release(entry_id(run_id)) is not None:
            await self._admit(GROUP, "")

    async def why(self, run_id: str) -> str | None:
        """Why a QUEUED run waits for a runtime slot, for ``describe`` (None: it does not)."""
        return await why_queued(self._table, run_id)


async def why_queued(table: FlowStore, run_id: str) -> str | None:
    """Why a QUEUED run waits for a runtime slot (None: it does not); a client (the CLI),
    which has no ``max_runs`` of its own, reads it too."""
    pos = await table.position(entry_id(run_id))
    if pos is None:
        return None
    return (
        f"a runtime slot: max_runs={pos.entry.limit} reached ({pos.running} running, {pos.ahead} queued ahead, "
        f"priority {pos.entry.priority})"
    )


def needs_slot(record: RunRecord) -> bool:
    """Whether a QUEUED run was created under ``max_runs`` (it starts holding a runtime slot)."""
    return CAPPED_KEY in record.metadata
