"""A run's timers: each a `Fire` on the runtime's shared clock, kept in a short list.

A live waiting run holds one (its signal's timeout, its sleep, its callback's deadline), so
what one costs is paid by every run in memory: a slotted object that is its own callback
and keeps its handle, in place of a ``partial`` of a bound method (with its argument tuple
and empty keyword dict) in a dict by key, about 400 bytes more per waiting run.
"""

from __future__ import annotations

from typing import Any, Protocol

from ...actors import Clock, TimerHandle

#: The passivation timer's key (that timer is held on its own, not in the list).
PASSIVATE_KEY = ("passivate", 0)


class _Owner(Protocol):
    run_id: str

    def _fire(self, fire: Fire) -> None: ...


class Fire:
    """A timer of the run ``owner``: `owner._fire` is called with it when due (the run then
    tells itself ``message``)."""

    __slots__ = ("handle", "key", "message", "owner")

    def __init__(self, owner: _Owner, key: tuple[str, int], message: Any) -> None:
        self.owner = owner
        self.key = key
        self.message = message
        self.handle: TimerHandle | None = None

    def __call__(self) -> None:
        self.owner._fire(self)

    def __repr__(self) -> str:
        return f"<timer {self.key} of run {self.owner.run_id!r}>"


def replace(timers: list[Fire] | None, clock: Clock, due: float, fire: Fire) -> list[Fire]:
    """Set ``fire`` at ``due`` in place of any timer with its key; the list to keep."""
    cancel(timers, fire.key)
    fire.handle = clock.call_at(due, fire)
    if timers is None:
        return [fire]
    timers.append(fire)
    return timers


def cancel(timers: list[Fire] | None, key: tuple[str, int]) -> None:
    """Cancel the timer with ``key``, if one is set."""
    if timers is None:
        return
    for i, fire in enumerate(timers):
        if fire.key == key:
            del timers[i]
            if fire.handle is not None:
                fire.handle.cancel()
            return


def cancel_all(timers: list[Fire] | None) -> None:
    """Cancel every timer in the list (the run stops, or continues as new)."""
    for fire in timers or ():
        if fire.handle is not None:
            fire.handle.cancel()


def forget(timers: list[Fire] | None, fire: Fire) -> None:
    """Drop ``fire``, which has just fired, from the list."""
    if timers is not None and fire in timers:
        timers.remove(fire)
