"""The clock interface: every timer in wayline reads time through one of these.

Passing the clock in (rather than calling ``time.time`` and ``asyncio.sleep`` directly) is
what lets ``wayline.testing.VirtualClock`` make a 30-day timer fire instantly and exactly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """Wall-clock time and timers. Times are epoch seconds (durable timers are stored as such)."""

    def time(self) -> float:
        """Now, in seconds since the epoch."""
        ...

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        """Call ``callback`` (on the event loop) once the clock reaches ``when``."""
        ...

    async def sleep(self, seconds: float) -> None: ...

    async def drive(self, is_idle: Callable[[], bool]) -> None:
        """Background work the clock needs while the runtime is open (virtual clocks jump
        time here); ``is_idle`` tells whether the runtime has I/O in flight."""
        ...


class SystemClock:
    """The real clock: ``time.time`` and the event loop's timers."""

    def time(self) -> float:
        return time.time()

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        loop = asyncio.get_running_loop()
        return loop.call_later(max(0.0, when - time.time()), callback)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    async def drive(self, is_idle: Callable[[], bool]) -> None:
        return None
