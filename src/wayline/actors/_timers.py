"""`SharedTimers`: many timers on one timer of the clock underneath.

A live run waiting on a signal with a timeout, a durable sleep or a retry backoff holds a
timer. One event-loop timer each costs about a kilobyte (the loop's handle, its libuv timer,
a copy of the context); at 100,000 waiting runs that is a tenth of a gigabyte for timers
that mostly never fire. Here each timer is one small heap entry, and the clock underneath
holds a single timer, set at the earliest entry (as Erlang keeps its timers in a wheel
per scheduler rather than one OS timer each).
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable

from ._clock import Clock, TimerHandle

#: Cancelled entries kept in the heap before it is rebuilt without them (at least this many,
#: and more than half of it): cancelling is O(1), and the heap never holds mostly garbage.
COMPACT_MIN = 256

log = logging.getLogger("wayline.actors")


class _Entry:
    """One timer: due time, order of arrival (ties fire first-come), the callback."""

    __slots__ = ("callback", "owner", "seq", "when")

    def __init__(self, when: float, seq: int, callback: Callable[[], None], owner: SharedTimers) -> None:
        self.when = when
        self.seq = seq
        self.callback: Callable[[], None] | None = callback
        self.owner = owner

    def __lt__(self, other: _Entry) -> bool:
        return self.when < other.when or (self.when == other.when and self.seq < other.seq)

    def cancel(self) -> None:
        if self.callback is not None:
            self.callback = None
            self.owner._cancelled_one()


class SharedTimers:
    """A `Clock` whose timers share one timer of ``clock``; time, sleeps and the clock's
    background work are ``clock``'s own. Callbacks run on the event loop, in order of due
    time, in the context of the shared timer (none of their own: they must not need one)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._heap: list[_Entry] = []
        self._seq = 0
        self._cancelled = 0
        self._handle: TimerHandle | None = None
        self._armed_at: float | None = None
        self._firing = False  # in `_fire`: it sets the next timer once its callbacks have run

    def time(self) -> float:
        return self.clock.time()

    async def sleep(self, seconds: float) -> None:
        await self.clock.sleep(seconds)

    async def drive(self, is_idle: Callable[[], bool]) -> None:
        await self.clock.drive(is_idle)

    def __len__(self) -> int:
        """Timers set and not yet fired or cancelled."""
        return len(self._heap) - self._cancelled

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        self._seq += 1
        entry = _Entry(when, self._seq, callback, self)
        heapq.heappush(self._heap, entry)
        if not self._firing and (self._armed_at is None or when < self._armed_at):
            self._arm(when)
        return entry

    def close(self) -> None:
        """Drop every timer (the runtime is closing)."""
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._armed_at = None
        self._heap.clear()
        self._cancelled = 0

    def _arm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._armed_at = when
        self._handle = self.clock.call_at(when, self._fire)

    def _fire(self) -> None:
        self._handle = self._armed_at = None
        heap = self._heap
        now = self.clock.time()
        self._firing = True
        try:
            while heap and heap[0].when <= now:
                entry = heapq.heappop(heap)
                callback = entry.callback
                if callback is None:
                    self._cancelled -= 1
                    continue
                entry.callback = None
                try:
                    callback()
                except Exception:
                    # As the event loop does for a failing callback: report it, go on with the
                    # others (they are other runs' timers).
                    log.exception("a timer callback failed: %r", callback)
            while heap and heap[0].callback is None:  # cancelled at the front: no wake-up for it
                heapq.heappop(heap)
                self._cancelled -= 1
        finally:
            self._firing = False
            if heap:
                self._arm(heap[0].when)

    def _cancelled_one(self) -> None:
        self._cancelled += 1
        heap = self._heap
        if not self._firing and self._cancelled >= COMPACT_MIN and self._cancelled * 2 > len(heap):
            self._heap = [entry for entry in heap if entry.callback is not None]
            heapq.heapify(self._heap)
            self._cancelled = 0
            if not self._heap and self._handle is not None:
                self._handle.cancel()
                self._handle = self._armed_at = None
