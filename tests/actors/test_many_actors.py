"""Actors are cheap: 100,000 live at once, each answering an ask."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from wayline.actors import Actor, ActorRef, Supervisor, SupervisorSpec, SystemClock

pytestmark = pytest.mark.anyio

N = 100_000
ASKERS = 200


class Echo(Actor[Any]):
    async def receive(self, message: Any) -> Any:
        return (self.ref.name, message)


async def test_hundred_thousand_live_actors_each_answer_one_ask() -> None:
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
