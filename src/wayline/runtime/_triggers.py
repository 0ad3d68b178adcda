"""`Event`, and `on_event`: the trigger a workflow declares to be started by events.

Below the definitions (``@workflow`` and `StateMachine` take ``triggers=``) and above
nothing of the runtime's: what a trigger is, and whether an event fires it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from .._errors import InvalidArgumentError


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """An event, as ``rt.send_event`` accepted it and as the runs it reaches see it.

    A run started by an event gets it as its input (annotate the input ``event: Event``);
    ``ctx.wait_for_event`` returns one.

    Attributes:
        name: what happened, e.g. ``"order/created"``.
        data: its payload (any storable data).
        id: its id: the sender's (events with an id seen in the last 24 hours are dropped as
            duplicates), or one made up when it was accepted.
        ts: its timestamp (epoch seconds): the sender's, or when it was accepted.
        seq: its place in the order in which the database accepted events (0 before that).
        metadata: entries the runs it starts take over as their metadata (a correlation id).
    """

    name: str
    data: Any = None
    id: str = ""
    ts: float = 0.0
    seq: int = 0
    metadata: dict[str, Any] = {}


class EventTrigger:
    """A workflow's trigger: start a run for each event ``event`` for which ``where`` (a
    plain function of the `Event`) is true. Made by `on_event`."""

    __slots__ = ("event", "where")

    def __init__(self, event: str, where: Callable[[Event], bool] | None = None) -> None:
        if not isinstance(event, str) or not event or len(event) > 256:
            raise InvalidArgumentError(
                "on_event", "event", f"must be an event name (a non-empty string), got {event!r}"
            )
        if where is not None and (not callable(where) or inspect.iscoroutinefunction(where)):
            raise InvalidArgumentError(
                "on_event",
                "where",
                f"must be a plain (not async) function of the Event that returns a bool, got {where!r}",
            )
        self.event = event
        self.where = where

    def __repr__(self) -> str:
        return f"on_event({self.event!r}{', where=...' if self.where else ''})"

    def fires(self, event: Event) -> bool:
        """Whether ``event`` starts a run; a ``where`` that raises counts as false (the
        caller logs it)."""
        return event.name == self.event and (self.where is None or bool(self.where(event)))


def on_event(event: str, where: Callable[[Event], bool] | None = None) -> EventTrigger:
    """A trigger for ``@workflow(triggers=[...])`` (and `StateMachine(triggers=[...])`):
    every event named ``event`` (for which ``where(event)`` is true) starts a run, with the
    event as its input.

    Raises:
        InvalidArgumentError: ``event`` is not a name, or ``where`` is not a plain function.
    """
    return EventTrigger(event, where)


def check_triggers(owner: str, triggers: Sequence[Any] | None) -> tuple[EventTrigger, ...]:
    """``triggers=`` as declared on ``owner``, checked."""
    if triggers is None:
        return ()
    if isinstance(triggers, EventTrigger) or not isinstance(triggers, Sequence):
        raise InvalidArgumentError(owner, "triggers", f"must be a list of on_event(...), got {triggers!r}")
    for trigger in triggers:
        if not isinstance(trigger, EventTrigger):
            raise InvalidArgumentError(owner, "triggers", f"takes on_event(...) triggers, got {trigger!r}")
    return tuple(triggers)
