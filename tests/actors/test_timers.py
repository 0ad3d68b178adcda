"""`SharedTimers`: many timers on one timer of the clock, fired in order, cancellable."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from wayline.actors import SharedTimers
from wayline.actors._timers import COMPACT_MIN


class _Handle:
    def __init__(self, clock: ManualClock, when: float, callback: Callable[[], None]) -> None:
        self.clock, self.when, self.callback = clock, when, callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A clock whose timers fire when the test advances it; counts the timers it holds."""

    def __init__(self) -> None:
        self.now = 0.0
        self.handles: list[_Handle] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> _Handle:
        handle = _Handle(self, when, callback)
        self.handles.append(handle)
        return handle

    def pending(self) -> list[_Handle]:
        return [h for h in self.handles if not h.cancelled]

    def advance(self, to: float) -> None:
        self.now = to
        while True:
            due = sorted((h for h in self.pending() if h.when <= to), key=lambda h: h.when)
            if not due:
                return
            due[0].cancelled = True  # fired: a handle fires once
            due[0].callback()

    async def sleep(self, seconds: float) -> None:
        raise AssertionError("not used")

    async def drive(self, is_idle: Callable[[], bool]) -> None:
        return None


def test_timers_fire_in_due_order_on_one_clock_timer() -> None:
    clock = ManualClock()
    timers = SharedTimers(clock)
    fired: list[str] = []
    for name, when in (("c", 30.0), ("a", 10.0), ("b", 20.0), ("a2", 10.0)):
        timers.call_at(when, lambda name=name: fired.append(name))  # type: ignore[misc]
    assert len(clock.pending()) == 1 and clock.pending()[0].when == 10.0  # one timer, the earliest
    clock.advance(10.0)
    assert fired == ["a", "a2"]  # same due time: first come, first fired
    assert [h.when for h in clock.pending()] == [20.0]  # re-armed at the next
    clock.advance(100.0)
    assert fired == ["a", "a2", "b", "c"]
    assert clock.pending() == [] and len(timers) == 0


def test_a_cancelled_timer_does_not_fire_and_an_earlier_one_re_arms() -> None:
    clock = ManualClock()
    timers = SharedTimers(clock)
    fired: list[str] = []
    late = timers.call_at(50.0, lambda: fired.append("late"))
    early = timers.call_at(5.0, lambda: fired.append("early"))
    assert [h.when for h in clock.pending()] == [5.0]
    early.cancel()
    early.cancel()  # twice is harmless
    assert len(timers) == 1
    clock.advance(5.0)  # nothing due: re-armed at 50
    assert fired == [] and [h.when for h in clock.pending()] == [50.0]
    late.cancel()
    clock.advance(60.0)
    assert fired == []


def test_a_timer_set_by_a_firing_callback_still_fires_in_order() -> None:
    clock = ManualClock()
    timers = SharedTimers(clock)
    fired: list[str] = []
    timers.call_at(10.0, lambda: (fired.append("first"), timers.call_at(40.0, lambda: fired.append("later"))))
    timers.call_at(20.0, lambda: fired.append("second"))
    clock.advance(10.0)
    # The new timer (40) must not become the only armed one while 20 is still waiting.
    assert [h.when for h in clock.pending()] == [20.0]
    clock.advance(100.0)
    assert fired == ["first", "second", "later"]


def test_a_failing_callback_is_logged_and_the_others_fire(caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock()
    timers = SharedTimers(clock)
    fired: list[str] = []

    def boom() -> None:
        raise RuntimeError("boom")

    timers.call_at(1.0, boom)
    timers.call_at(1.0, lambda: fired.append("after"))
    timers.call_at(2.0, lambda: fired.append("next"))
    with caplog.at_level(logging.ERROR, logger="wayline.actors"):
        clock.advance(1.0)
    assert fired == ["after"]
    assert "a timer callback failed" in caplog.text
    assert [h.when for h in clock.pending()] == [2.0]


def test_cancelled_timers_are_compacted_away() -> None:
    clock = ManualClock()
    timers = SharedTimers(clock)
    handles = [timers.call_at(float(i), lambda: None) for i in range(1, COMPACT_MIN * 2 + 2)]
    keep = handles.pop()
    for handle in handles:
        handle.cancel()
    assert len(timers) == 1
    assert len(timers._heap) <= COMPACT_MIN  # rebuilt without the cancelled entries (513 made)
    fired: list[float] = []
    timers.call_at(0.5, lambda: fired.append(0.5))
    clock.advance(10_000.0)
    assert fired == [0.5] and len(timers) == 0
    keep.cancel()


def test_close_drops_every_timer() -> None:
    clock = ManualClock()
    timers = SharedTimers(clock)
    fired: list[int] = []
    timers.call_at(1.0, lambda: fired.append(1))
    timers.close()
    assert clock.pending() == []
    clock.advance(5.0)
    assert fired == [] and len(timers) == 0
