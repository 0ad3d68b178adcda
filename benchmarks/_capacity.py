"""Capacity: many live actors at once, each answering one ask (moved here from the tests).

``tests/actors/test_many_actors.py`` ran 100,000 actors on every ``make test`` (about 15 s a
loop on the 2-core machine, twice: asyncio and uvloop). What it measured, how many actors
fit and how fast they answer, is a figure, so it is a benchmark row; the suite keeps a test
of the behaviour (every actor answers and stays alive) at a size that costs nothing.

- ``bare``: an asyncio task per "actor", blocked on a one-message slot (a future) that it
  re-arms after each message; one message each, answered through a future. The least an
  actor system on asyncio can hold and do.
- ``wayline``: ``Supervisor.spawn`` of N `Actor` s (mailbox, supervision), each asked once.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from typing import Any

from ._common import Deadline, Metrics, Params

#: Concurrent askers: enough to keep many mailboxes busy at once, as a server's requests would.
ASKERS = 200


def _rss() -> int:
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def _ask_all(n: int, ask: Any) -> list[Any]:
    replies: list[Any] = [None] * n

    async def asker(first: int) -> None:
        for i in range(first, n, ASKERS):
            replies[i] = await ask(i)

    await asyncio.gather(*(asker(k) for k in range(ASKERS)))
    return replies


def _metrics(n: int, spawned_s: float, asked_s: float, grown: int, clock: Deadline) -> Metrics:
    return {
        "us_per_actor": (spawned_s + asked_s) / n * 1e6,
        "spawn_us": spawned_s / n * 1e6,
        "ask_us": asked_s / n * 1e6,
        "bytes_per_actor": grown / n,
        "cpu_us_per_actor": clock.cpu_us_per(n),
    }


async def bare(params: Params) -> Metrics:
    n = int(params["n"])
    gc.collect()
    before, clock = _rss(), Deadline()
    loop = asyncio.get_running_loop()
    # Each "actor" waits on a one-message slot (a future) it re-arms after each message:
    # the least a task that answers messages can hold.
    slots: list[asyncio.Future[tuple[int, asyncio.Future[Any]]]] = [loop.create_future() for _ in range(n)]

    async def actor(i: int) -> None:
        name = f"a{i}"
        while True:
            message, reply = await slots[i]
            slots[i] = loop.create_future()
            reply.set_result((name, message))

    tasks = [asyncio.ensure_future(actor(i)) for i in range(n)]
    await asyncio.sleep(0)  # each task runs up to its first wait
    spawned = clock.elapsed
    grown = _rss() - before

    async def ask(i: int) -> Any:
        reply = loop.create_future()
        slots[i].set_result((i, reply))
        return await reply

    replies = await _ask_all(n, ask)
    asked = clock.elapsed - spawned
    if replies != [(f"a{i}", i) for i in range(n)]:
        raise AssertionError("a bare actor answered wrongly")
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return _metrics(n, spawned, asked, grown, clock)


async def wayline(params: Params) -> Metrics:
    from wayline.actors import Actor, Supervisor, SupervisorSpec, SystemClock

    class Echo(Actor[Any]):
        async def receive(self, message: Any) -> Any:
            return (self.ref.name, message)

    n = int(params["n"])
    gc.collect()
    before, clock = _rss(), Deadline()
    async with Supervisor(SupervisorSpec(), SystemClock()) as sup:
        refs = [sup.spawn(f"a{i}", Echo) for i in range(n)]
        await asyncio.sleep(0)
        spawned = clock.elapsed
        grown = _rss() - before
        started = time.perf_counter()
        replies = await _ask_all(n, lambda i: refs[i].ask(i))
        asked = time.perf_counter() - started
        alive = all(r.alive for r in refs)
        sup.cancel_all()
    if replies != [(f"a{i}", i) for i in range(n)] or not alive:
        raise AssertionError("an actor answered wrongly or stopped after answering")
    return _metrics(n, spawned, asked, grown, clock)
