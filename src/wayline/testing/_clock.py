"""`VirtualClock`: time that jumps to the next timer as soon as nothing else can run."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from datetime import UTC, datetime

#: 2026-01-01T00:00:00Z: a fixed, recognisable start so tests are reproducible.
DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC).timestamp()


class _Timer:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class VirtualClock:
    """A `Clock` for tests: timers, ``ctx.sleep``, retry backoff and timeouts cost no real time.

    With ``autojump`` (the default), whenever every task is blocked and the store has no I/O
    in flight, the clock jumps straight to the earliest pending timer and fires it, so a
    30-day timer fires at once, and exactly on time in virtual terms. Without it, move time
    with `advance`.

    Pass it as ``open_runtime(..., clock=VirtualClock())``. Idleness is read from the asyncio
    loop's ready queue; on loops that do not expose one (uvloop), the clock waits for a few
    dozen quiet loop iterations instead, which is reliable for tests but not a proof.
    """

    def __init__(self, start: float | datetime | None = None, *, autojump: bool = True) -> None:
        if isinstance(start, datetime):
            if start.tzinfo is None:
                raise ValueError("VirtualClock start must be a timezone-aware datetime")
            start = start.timestamp()
        self._now = DEFAULT_START if start is None else float(start)
        self.autojump = autojump
        self._heap: list[tuple[float, int, _Timer]] = []
        self._seq = itertools.count()
        self._changed: asyncio.Future[None] | None = None

    # --- the Clock protocol ----------------------------------------------------------------

    def time(self) -> float:
        return self._now

    def call_at(self, when: float, callback: Callable[[], None]) -> _Timer:
        timer = _Timer(when, callback)
        heapq.heappush(self._heap, (when, next(self._seq), timer))
        if self._changed is not None and not self._changed.done():
            self._changed.set_result(None)
        return timer

    async def sleep(self, seconds: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not fut.done():
                fut.set_result(None)

        timer = self.call_at(self._now + max(0.0, seconds), wake)
        try:
            await fut
        finally:
            timer.cancel()

    async def drive(self, is_idle: Callable[[], bool]) -> None:
        loop = asyncio.get_running_loop()
        quiet = 0
        while True:
            await asyncio.sleep(0)
            self._fire_due()
            if not self._has_timers() or not self.autojump:
                quiet = 0
                self._changed = loop.create_future()
                await self._changed
                continue
            if not is_idle():
                quiet = 0
                await asyncio.sleep(0.0005)  # real I/O in flight: let it land first
                continue
            ready = getattr(loop, "_ready", None)
            if ready is not None:
                if ready:
                    continue
            else:
                quiet += 1
                if quiet < 50:
                    continue
            quiet = 0
            self._now = max(self._now, self._heap[0][0])
            self._fire_due()

    # --- test controls -----------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` and fire every timer that became due."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._now += seconds
        self._fire_due()

    @property
    def pending_timers(self) -> int:
        return sum(1 for _, _, t in self._heap if not t.cancelled)

    def _has_timers(self) -> bool:
        heap = self._heap
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
        return bool(heap)

    def _fire_due(self) -> None:
        heap = self._heap
        while heap and (heap[0][2].cancelled or heap[0][0] <= self._now):
            _, _, timer = heapq.heappop(heap)
            if not timer.cancelled:
                timer.cancelled = True
                timer.callback()
