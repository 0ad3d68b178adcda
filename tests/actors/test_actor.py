"""Actors: one message at a time, ask/tell, lifecycle hooks."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest

from wayline.actors import Actor, ActorRef, ActorStoppedError, run_actor

pytestmark = pytest.mark.anyio


class Recorder(Actor[Any]):
    """Logs hooks and messages; a handler yields to the loop several times mid-message."""

    def __init__(self, log: list[Any]) -> None:
        self.log = log

    async def on_start(self) -> None:
        self.log.append("on_start")

    async def receive(self, message: Any) -> Any:
        if message == "stop":
            self.stop()
            return "stopping"
        if isinstance(message, Exception):
            raise message
        self.log.append(("begin", message))
        for _ in range(5):
            await asyncio.sleep(0)
        self.log.append(("end", message))
        return message * 10

    async def on_stop(self, error: BaseException | None) -> None:
        self.log.append(("on_stop", error))


def _spawn(tg: anyio.abc.TaskGroup, actor: Actor[Any], name: str = "a") -> ActorRef[Any]:
    actor.ref = ActorRef(name)
    tg.start_soon(run_actor, actor)
    return actor.ref


async def test_messages_are_processed_one_at_a_time_in_order() -> None:
    log: list[Any] = []
    async with anyio.create_task_group() as tg:
        ref = _spawn(tg, Recorder(log))
        for i in range(1, 6):
            ref.tell(i)
        assert ref.mailbox_depth == 5
        assert await ref.ask("stop") == "stopping"
    body = [entry for entry in log if isinstance(entry, tuple) and entry[0] in ("begin", "end")]
    # a handler that awaits never interleaves with the next message
    assert body == [(kind, i) for i in range(1, 6) for kind in ("begin", "end")]


async def test_concurrent_asks_from_many_tasks_never_interleave() -> None:
    log: list[Any] = []
    replies: dict[int, Any] = {}

    async def asker(i: int) -> None:
        replies[i] = await ref.ask(i)

    async with anyio.create_task_group() as tg:
        ref = _spawn(tg, Recorder(log))
        async with anyio.create_task_group() as askers:
            for i in range(20):
                askers.start_soon(asker, i)
        ref.tell("stop")
    assert replies == {i: i * 10 for i in range(20)}
    body = [e for e in log if isinstance(e, tuple) and e[0] in ("begin", "end")]
    for k in range(0, len(body), 2):
        assert body[k][0] == "begin" and body[k + 1] == ("end", body[k][1])


async def test_ask_returns_the_reply() -> None:
    async with anyio.create_task_group() as tg:
        ref = _spawn(tg, Recorder([]))
        assert await ref.ask(4) == 40
        assert await ref.ask(7) == 70
        ref.tell("stop")


async def test_ask_raises_the_handlers_exception_and_the_actor_crashes() -> None:
    log: list[Any] = []
    boom = ValueError("boom")
    crashed: list[BaseException] = []

    async def runner(actor: Actor[Any]) -> None:
        try:
            await run_actor(actor)
        except ValueError as exc:
            crashed.append(exc)

    actor = Recorder(log)
    actor.ref = ActorRef("a")
    async with anyio.create_task_group() as tg:
        tg.start_soon(runner, actor)
        with pytest.raises(ValueError, match="boom") as info:
            await actor.ref.ask(boom)
        assert info.value is boom
    assert crashed == [boom]
    assert log == ["on_start", ("on_stop", boom)]


async def test_lifecycle_hooks_run_in_order_around_messages() -> None:
    log: list[Any] = []
    async with anyio.create_task_group() as tg:
        ref = _spawn(tg, Recorder(log))
        ref.tell(1)
        await ref.ask("stop")
    assert log == ["on_start", ("begin", 1), ("end", 1), ("on_stop", None)]


async def test_messages_arriving_after_stop_request_are_not_processed() -> None:
    log: list[Any] = []
    async with anyio.create_task_group() as tg:
        ref = _spawn(tg, Recorder(log))
        ref.tell("stop")
        ref.tell(1)
    assert ("begin", 1) not in log
    assert log[-1] == ("on_stop", None)


async def test_tell_and_ask_to_a_stopped_ref_raise() -> None:
    ref: ActorRef[Any] = ActorRef("gone")
    ref._close(None)
    assert not ref.alive
    with pytest.raises(ActorStoppedError) as info:
        ref.tell(1)
    assert info.value.name == "gone"
    with pytest.raises(ActorStoppedError):
        await ref.ask(1)


async def test_closing_a_ref_fails_pending_asks() -> None:
    ref: ActorRef[Any] = ActorRef("x")
    result: list[BaseException] = []

    async def asker() -> None:
        try:
            await ref.ask("hello")
        except ActorStoppedError as exc:
            result.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(asker)
        await asyncio.sleep(0)
        assert ref.mailbox_depth == 1
        ref._close(None)
    assert len(result) == 1 and ref.mailbox_depth == 0
