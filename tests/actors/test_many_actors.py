"""Many actors at once: every one answers its ask and stays alive for more.

The capacity figure (100,000 live actors, time and memory per actor) is a benchmark,
`python -m benchmarks capacity`; this test keeps the behaviour, at a size that costs
nothing (it ran 100,000 actors twice on every `make test`: about 30 s of the suite).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from wayline.actors import Actor, ActorRef, Supervisor, SupervisorSpec, SystemClock

pytestmark = pytest.mark.anyio

N = 2_000
ASKERS = 50  # more askers than one, so that many mailboxes are busy at once


class Echo(Actor[Any]):
    async def receive(self, message: Any) -> Any:
        return (self.ref.name, message)


async def test_many_live_actors_each_answer_one_ask() -> None:
    async with Supervisor(SupervisorSpec(), SystemClock()) as sup:
        refs: list[ActorRef[Any]] = [sup.spawn(f"a{i}", Echo) for i in range(N)]
        assert len(sup.children) == N
        replies: list[Any] = [None] * N

        async def asker(first: int) -> None:
            for i in range(first, N, ASKERS):
                replies[i] = await refs[i].ask(i)

        await asyncio.gather(*(asker(k) for k in range(ASKERS)))
        # every actor is still alive (waiting for more) after answering
        assert all(r.alive for r in refs)
        sup.cancel_all()
    assert replies == [(f"a{i}", i) for i in range(N)]
    assert sup.children == {}
