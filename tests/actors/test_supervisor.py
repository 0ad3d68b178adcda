"""OTP-style supervision: restart with the same ref and mailbox, give up on a crash loop."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from wayline.actors import Actor, ActorStoppedError, Supervisor, SupervisorSpec

pytestmark = pytest.mark.anyio


class FakeClock:
    """A `Clock` whose sleeps return at once, advance time, and are recorded."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> Any:
        raise AssertionError("the supervisor should only sleep")

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)

    async def drive(self, is_idle: Callable[[], bool]) -> None:
        return None


class Crashy(Actor[Any]):
    """Crashes on "crash"; otherwise records (incarnation, message) and echoes."""

    def __init__(self, incarnation: int, log: list[Any]) -> None:
        self.incarnation = incarnation
        self.log = log

    async def on_start(self) -> None:
        self.log.append(("start", self.incarnation, self.ref))

    async def receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError(f"crash in incarnation {self.incarnation}")
        if message == "stop":
            self.stop()
            return None
        self.log.append((self.incarnation, message))
        return (self.incarnation, message)


def factory_for(log: list[Any]) -> tuple[Callable[[], Crashy], list[Crashy]]:
    made: list[Crashy] = []

    def factory() -> Crashy:
        actor = Crashy(len(made), log)
        made.append(actor)
        return actor

    return factory, made


async def test_crashed_actor_is_restarted_with_the_same_ref_and_mailbox() -> None:
    log: list[Any] = []
    factory, made = factory_for(log)
    crashes: list[tuple[str, int]] = []

    async def on_crash(exc: BaseException, restarts: int) -> None:
        crashes.append((str(exc), restarts))

    clock = FakeClock()
    async with Supervisor(SupervisorSpec(), clock) as sup:
        ref = sup.spawn("worker", factory, on_crash=on_crash)
        # queued behind the crashing message: must survive into the next incarnation
        ref.tell("crash")
        ref.tell("a")
        ref.tell("b")
        assert await ref.ask("c") == (1, "c")
        assert ref.alive
        assert sup.children["worker"] is ref
        ref.tell("stop")
    assert len(made) == 2
    assert [a.ref for a in made] == [ref, ref]
    assert log[-3:] == [(1, "a"), (1, "b"), (1, "c")]
    assert crashes == [("crash in incarnation 0", 1)]
    assert "worker" not in sup.children  # a normal stop is not restarted
    assert not ref.alive


async def test_ask_that_crashes_the_actor_gets_the_exception_then_the_actor_restarts() -> None:
    log: list[Any] = []
    factory, made = factory_for(log)
    async with Supervisor(SupervisorSpec(), FakeClock()) as sup:
        ref = sup.spawn("w", factory)
        with pytest.raises(RuntimeError, match="incarnation 0"):
            await ref.ask("crash")
        assert await ref.ask("x") == (1, "x")
        ref.tell("stop")
    assert len(made) == 2


async def test_gives_up_after_intensity_crashes_within_period() -> None:
    log: list[Any] = []
    factory, made = factory_for(log)
    gave_up: list[tuple[BaseException, int]] = []
    restarts_seen: list[int] = []

    async def on_give_up(exc: BaseException, restarts: int) -> None:
        gave_up.append((exc, restarts))

    async def on_crash(exc: BaseException, restarts: int) -> None:
        restarts_seen.append(restarts)

    spec = SupervisorSpec(intensity=2, period=60.0)
    async with Supervisor(spec, FakeClock()) as sup:
        ref = sup.spawn("loop", factory, on_crash=on_crash, on_give_up=on_give_up)
        for _ in range(3):
            ref.tell("crash")
        ref.tell("never processed")
    # intensity 2: two restarts allowed, the third crash in the window gives up
    assert len(made) == 3
    assert restarts_seen == [1, 2]
    assert len(gave_up) == 1
    exc, restarts = gave_up[0]
    assert isinstance(exc, RuntimeError) and str(exc) == "crash in incarnation 2"
    assert restarts == 2
    assert not ref.alive
    assert "loop" not in sup.children
    with pytest.raises(ActorStoppedError):
        ref.tell("hello")


async def test_pending_asks_fail_when_the_supervisor_gives_up() -> None:
    factory, _ = factory_for([])
    async with Supervisor(SupervisorSpec(intensity=0), FakeClock()) as sup:
        ref = sup.spawn("w", factory)
        ref.tell("crash")
        with pytest.raises(ActorStoppedError):
            await ref.ask("left in the mailbox")


async def test_crashes_spread_beyond_the_period_are_always_restarted() -> None:
    factory, made = factory_for([])
    gave_up: list[Any] = []

    async def on_give_up(exc: BaseException, restarts: int) -> None:
        gave_up.append(exc)

    # each restart waits 1 s of (fake) time, longer than the 0.5 s window: never a loop
    spec = SupervisorSpec(intensity=1, period=0.5, backoff_initial=1.0, backoff_factor=1.0)
    async with Supervisor(spec, FakeClock()) as sup:
        ref = sup.spawn("w", factory, on_give_up=on_give_up)
        for _ in range(10):
            ref.tell("crash")
        assert await ref.ask("alive?") == (10, "alive?")
        ref.tell("stop")
    assert gave_up == []
    assert len(made) == 11


async def test_restart_backoff_sleeps_on_the_clock_doubling_up_to_the_cap() -> None:
    factory, _ = factory_for([])
    clock = FakeClock()
    spec = SupervisorSpec(intensity=10, period=1e6, backoff_initial=1.0, backoff_factor=3.0, backoff_max=5.0)
    async with Supervisor(spec, clock) as sup:
        ref = sup.spawn("w", factory)
        for _ in range(5):
            ref.tell("crash")
        await ref.ask("sync")
        ref.tell("stop")
    assert clock.sleeps == [1.0, 3.0, 5.0, 5.0, 5.0]


async def test_default_backoff_sequence() -> None:
    factory, _ = factory_for([])
    clock = FakeClock()
    async with Supervisor(SupervisorSpec(), clock) as sup:
        ref = sup.spawn("w", factory)
        for _ in range(3):
            ref.tell("crash")
        await ref.ask("sync")
        ref.tell("stop")
    assert clock.sleeps == pytest.approx([0.05, 0.1, 0.2])


async def test_one_for_one_a_crash_restarts_only_that_actor() -> None:
    log_a: list[Any] = []
    log_b: list[Any] = []
    fa, made_a = factory_for(log_a)
    fb, made_b = factory_for(log_b)
    async with Supervisor(SupervisorSpec(), FakeClock()) as sup:
        a = sup.spawn("a", fa)
        b = sup.spawn("b", fb)
        a.tell("crash")
        assert await a.ask(1) == (1, 1)
        assert await b.ask(1) == (0, 1)
        a.tell("stop")
        b.tell("stop")
    assert len(made_a) == 2 and len(made_b) == 1


async def test_cancel_all_stops_every_child() -> None:
    factory, _ = factory_for([])
    async with Supervisor(SupervisorSpec(), FakeClock()) as sup:
        refs = [sup.spawn(f"w{i}", factory) for i in range(5)]
        await asyncio.gather(*(r.ask("ping") for r in refs))
        sup.cancel_all()
    assert not any(r.alive for r in refs)
    assert sup.children == {}


async def test_spawn_outside_the_context_raises() -> None:
    sup = Supervisor(SupervisorSpec(), FakeClock())
    with pytest.raises(RuntimeError, match="not running"):
        sup.spawn("w", factory_for([])[0])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"strategy": "one_for_all"}, "strategy"),
        ({"intensity": -1}, "intensity"),
        ({"period": 0}, "period"),
        ({"period": -5.0}, "period"),
    ],
)
def test_supervisor_spec_validation(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SupervisorSpec(**kwargs)


def test_supervisor_spec_is_frozen_data_with_documented_defaults() -> None:
    spec = SupervisorSpec()
    assert (spec.strategy, spec.intensity, spec.period) == ("one_for_one", 3, 10.0)
    assert (spec.backoff_initial, spec.backoff_factor, spec.backoff_max) == (0.05, 2.0, 2.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.intensity = 5  # type: ignore[misc]


class Fatal(BaseException):
    """Not an `Exception`: no restart can fix it (like a simulated process crash)."""


class DiesHard(Actor[Any]):
    async def receive(self, message: Any) -> Any:
        if message == "die":
            raise Fatal("process is going down")
        return message


async def test_a_base_exception_in_a_child_is_not_restarted_and_unwinds_the_supervisor() -> None:
    made: list[Actor[Any]] = []

    def factory() -> Actor[Any]:
        made.append(DiesHard())
        return made[-1]

    other_log: list[Any] = []
    other_factory, _ = factory_for(other_log)
    with pytest.raises(Fatal):
        async with Supervisor(SupervisorSpec(), FakeClock()) as sup:
            victim = sup.spawn("victim", factory)
            bystander = sup.spawn("bystander", other_factory)
            assert await bystander.ask("hi") == (0, "hi")
            victim.tell("die")
            await asyncio.sleep(3600)  # the fatal error must interrupt the block
    assert len(made) == 1
    assert not bystander.alive


class StrayCancel(Actor[Any]):
    """Raises CancelledError from a handler although nobody cancelled its task."""

    def __init__(self, incarnation: int) -> None:
        self.incarnation = incarnation

    async def receive(self, message: Any) -> Any:
        if message == "stray":
            fut = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_soon(fut.cancel)
            await fut  # raises CancelledError: a library cancelled a future it handed out
        return (self.incarnation, message)


async def test_a_stray_cancelled_error_is_a_crash_not_a_silent_exit() -> None:
    made: list[StrayCancel] = []

    def factory() -> StrayCancel:
        made.append(StrayCancel(len(made)))
        return made[-1]

    async with Supervisor(SupervisorSpec(), FakeClock()) as sup:
        ref = sup.spawn("s", factory)
        ref.tell("stray")
        try:
            assert await asyncio.wait_for(ref.ask("after"), 1) == (1, "after")
        finally:
            sup.cancel_all()
    assert len(made) == 2


class CrashySpec:
    """A `ChildSpec`: builds Crashy actors, records crashes and the give-up."""

    def __init__(self) -> None:
        self.log: list[Any] = []
        self.made: list[Crashy] = []
        self.events: list[tuple[str, int]] = []

    def build(self) -> Crashy:
        actor = Crashy(len(self.made), self.log)
        self.made.append(actor)
        return actor

    async def on_crash(self, exc: BaseException, restarts: int) -> None:
        self.events.append(("crash", restarts))

    async def on_give_up(self, exc: BaseException, restarts: int) -> None:
        self.events.append(("give_up", restarts))


async def test_a_child_spec_object_builds_restarts_and_gives_up() -> None:
    spec = CrashySpec()
    async with Supervisor(SupervisorSpec(intensity=1, period=60.0), FakeClock()) as sup:
        ref = sup.spawn_child("c", spec)
        assert await ref.ask("a") == (0, "a")
        with pytest.raises(RuntimeError):
            await ref.ask("crash")
        assert await ref.ask("b") == (1, "b")  # rebuilt by the spec, same ref
        with pytest.raises(RuntimeError):
            await ref.ask("crash")  # the second crash within the period: given up
        with pytest.raises(ActorStoppedError):
            for _ in range(100):
                ref.tell("after")
                await asyncio.sleep(0)
    assert spec.events == [("crash", 1), ("give_up", 1)]
    assert len(spec.made) == 2
