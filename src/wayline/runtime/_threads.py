"""The worker threads that run sync (``def``) activities, one pool per runtime."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

#: Threads that run sync (``def``) activities, per runtime, unless ``open_runtime`` is given
#: ``activity_threads``. Python's own default for I/O work (`ThreadPoolExecutor`): blocking
#: activities mostly wait on the network or a disk, so a few more threads than cores keep
#: them moving, while CPU-bound ones gain nothing from more (the GIL); 32 at most bounds the
#: memory and the load put on the services they call.
DEFAULT_ACTIVITY_THREADS = min(32, (os.cpu_count() or 1) + 4)


class ActivityThreads(ThreadPoolExecutor):
    """A bounded pool that counts the activity calls it is running for the event loop.

    ``busy`` is changed on the loop's thread only (around each await of a call), so it needs
    no lock. A `wayline.testing.VirtualClock` does not move on while it is above zero: a
    blocking step is work in progress, and jumping virtual time past it would time it out
    for merely running.
    """

    def __init__(self, size: int) -> None:
        super().__init__(size, thread_name_prefix="wayline-activity")
        self.busy = 0
