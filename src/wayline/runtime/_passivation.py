"""Passivation: runs that only wait leave memory, and come back when a timer is due or a
message arrives.

A run waiting on timers, signals or callbacks for ``passivate_after`` seconds stops its actor;
everything it waits for is in its snapshot (waits with due times) and its inbox. One timer per
runtime, set at the earliest due time known, reloads the passivated runs that are due (found
by the store's index on wake times, so a million waiting runs cost nothing until then); a
message reloads its run at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ..actors import Clock, TimerHandle
from ..persistence import Store

#: How a run is brought back into memory: ``wake(run_id, reason)``.
Wake = Callable[[str, str], Awaitable[None]]

#: Due runs read per query while waking them.
BATCH = 1000


class WakeTimer:
    """The one timer that wakes passivated runs, set at the earliest due time known."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._timer: TimerHandle | None = None
        self._at: float | None = None

    def schedule(self, when: float, callback: Callable[[], None]) -> None:
        """Call ``callback`` at ``when``, unless it is already due to be called by then."""
        if self._at is not None and self._at <= when:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._at = when
        self._timer = self._clock.call_at(when, callback)

    def fired(self) -> None:
        """The callback is running: the next `schedule` sets a new timer."""
        self._at = self._timer = None

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._at = self._timer = None


async def wake_due(store: Store, now: float, wake: Wake) -> float | None:
    """Reload every passivated run whose timer is due at ``now``; returns the next due time
    after them, if any."""
    while True:
        due = await store.due_runs(now, limit=BATCH)
        for run_id, _ in due:
            await wake(run_id, "woken by its timer")
        if len(due) < BATCH:
            break
    return await store.next_wake(now)


async def wake_if_messages(store: Store, run_id: str, seen: int, wake: Wake) -> None:
    """Reload a run that just left memory if a message newer than ``seen`` (the last inbox seq
    it took in) reached its inbox while it was leaving (a tell to a stopping actor is dropped).
    Older ones are signals it keeps for a later wait: they are in its inbox, so they must not
    reload it again and again."""
    if any(seq > seen for seq, _ in await store.get_inbox(run_id)):
        await wake(run_id, "woken by a message")
