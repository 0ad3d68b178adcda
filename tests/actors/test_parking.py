"""Parking actors (`Actor.parks`): a task only while there is work, the same actor after."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import pytest

from wayline.actors import Actor, ActorStoppedError, Supervisor, SupervisorSpec

from .test_supervisor import FakeClock

pytestmark = pytest.mark.anyio

seen_var: contextvars.ContextVar[str] = contextvars.ContextVar("seen_var", default="unset")


class Parker(Actor[Any]):
    """Records its lifecycle; keeps a count across messages (its state survives parking)."""

    parks = True

    def __init__(self, log: list[Any]) -> None:
        self.log = log
        self.count = 0

    async def on_start(self) -> None:
        self.log.append("start")

    async def receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("crash")
        if message == "stop":
            self.stop()
            return None
        if message == "var":
            return seen_var.get()
        if message == "slow":
            await asyncio.sleep(0)
        self.count += 1
        return (self.count, asyncio.current_task())

    async def on_stop(self, error: BaseException | None) -> None:
        self.log.append(("stop", type(error).__name__ if error is not None else None))


async def parked(before: set[asyncio.Task[Any]], name: str) -> None:
    """Until no task is left but those of ``before`` (the test's own, taken before the actor
    was spawned): ``name`` has parked (or stopped)."""
    for _ in range(100):
        if asyncio.all_tasks() <= before:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{name} still holds a task: {asyncio.all_tasks()}")


async def test_a_parked_actor_holds_no_task_and_keeps_its_state() -> None:
    log: list[Any] = []
    before = asyncio.all_tasks()
    async with Supervisor(SupervisorSpec(), FakeClock()) as sup:
        ref = sup.spawn("p", lambda: Parker(log))
        first, task1 = await ref.ask("hello")
        await parked(before, "p")  # idle: no task at all
        assert ref.alive and ref.mailbox_depth == 0
        second, task2 = await ref.ask("again")
        assert (first, second) == (1, 2)  # the same actor: its count went on
        assert task1 is not task2  # a new task for the new message
        assert log == ["start"]  # on_start once per incarnation, not per task
        ref.tell("stop")
    assert not ref.alive  # the supervisor's block waited for it to stop
    assert log == ["start", ("stop", None)]


async def test_messages_told_while_busy_are_taken_by_the_same_task() -> None:
    log: list[Any] = []
    async with Supervisor(SupervisorSpec(), FakeClock()) as sup:
        ref = sup.spawn("p", lambda: Parker(log))
        replies = await asyncio.gather(*(ref.ask("slow") for _ in range(5)))
        assert [count for count, _ in replies] == [1, 2, 3, 4, 5]  # one at a time, in order
        assert len({task for _, task in replies}) == 1
        sup.cancel_all()


async def test_a_parked_actor_is_stopped_with_its_supervisor() -> None:
    log: list[Any] = []
    before = asyncio.all_tasks()
    async with Supervisor(SupervisorSpec(), FakeClock()) as sup:
        ref = sup.spawn("p", lambda: Parker(log))
        await ref.ask("hello")
        await parked(before, "p")
        sup.cancel_all()
    # As an actor waiting on its mailbox in a task would have been: on_stop with the cancel.
    assert log == ["start", ("stop", "CancelledError")]
    with pytest.raises(ActorStoppedError):
        ref.tell("late")


async def test_a_crash_after_parking_restarts_a_fresh_incarnation() -> None:
    log: list[Any] = []
    before = asyncio.all_tasks()
    async with Supervisor(SupervisorSpec(), FakeClock()) as sup:
        ref = sup.spawn("p", lambda: Parker(log))
        await ref.ask("one")
        await parked(before, "p")
        with pytest.raises(RuntimeError):
            await ref.ask("crash")
        count, _ = await ref.ask("after")  # queued for the restarted incarnation
        assert count == 1  # fresh state: the restart rebuilt the actor
        sup.cancel_all()
    assert log == ["start", ("stop", "RuntimeError"), "start", ("stop", "CancelledError")]


async def test_a_resumed_task_runs_in_the_given_context_not_the_senders() -> None:
    base = contextvars.copy_context()
    base.run(seen_var.set, "actor's")
    before = asyncio.all_tasks()
    async with Supervisor(SupervisorSpec(), FakeClock()) as sup:
        ref = sup.spawn("p", lambda: Parker([]), context=base)
        await ref.ask("hello")
        await parked(before, "p")
        token = seen_var.set("sender's")
        try:
            assert await ref.ask("var") == "actor's"
        finally:
            seen_var.reset(token)
        sup.cancel_all()
