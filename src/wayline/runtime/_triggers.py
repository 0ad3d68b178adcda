"""`Event`, and `on_event`: the trigger a workflow declares to be started by events.

Below the definitions (``@workflow`` and `StateMachine` take ``triggers=`` and
``cancel_on=``) and above nothing of the runtime's: what a trigger (or cancel-on entry) is,
and whether an event fires it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
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
    """An event a workflow listens to: as a trigger, start a run for each event ``event``
    for which ``where`` (a plain function of the `Event`) is true; in ``cancel_on``, cancel
    the runs whose input ``match`` relates to such an event. Made by `on_event`."""

    __slots__ = ("event", "match", "where")

    def __init__(
        self,
        event: str,
        where: Callable[[Event], bool] | None = None,
        match: str | Mapping[str, str | Callable[[Any], Any]] | None = None,
    ) -> None:
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
        #: ``cancel_on``'s relation of the event to a run: event path -> the path in the run's
        #: input that must hold the same value there, or a plain function of the input giving
        #: that value (None: every run of the workflow).
        self.match: dict[str, str | Callable[[Any], Any]] | None = _check_match(match)

    def __repr__(self) -> str:
        where = ", where=..." if self.where else ""
        match = f", match={self.match!r}" if self.match else ""
        return f"on_event({self.event!r}{where}{match})"

    def fires(self, event: Event) -> bool:
        """Whether ``event`` starts a run (or, in ``cancel_on``, may cancel one); a ``where``
        that raises counts as false (the caller logs it)."""
        return event.name == self.event and (self.where is None or bool(self.where(event)))


def _is_path(path: Any) -> bool:
    return isinstance(path, str) and bool(path) and all(path.split("."))


def _check_match(match: Any) -> dict[str, str | Callable[[Any], Any]] | None:
    """``match=`` of `on_event`, as a dict from event path to input path or function."""
    if match is None:
        return None
    if isinstance(match, str):
        match = {match: match}
    if not isinstance(match, Mapping) or not match:
        raise InvalidArgumentError(
            "on_event",
            "match",
            "must be a dotted path that the event's data and the run's input share ('order_id', "
            "'customer.id'), or a dict from a path in the event's data to a path in the run's "
            f"input or to a plain function of the input, got {match!r}",
        )
    checked: dict[str, str | Callable[[Any], Any]] = {}
    for path, source in match.items():
        if not _is_path(path):
            raise InvalidArgumentError(
                "on_event", "match", f"keys are dotted paths in the event's data ('order_id', 'a.b'), got {path!r}"
            )
        if not _is_path(source) and (not callable(source) or inspect.iscoroutinefunction(source)):
            raise InvalidArgumentError(
                "on_event",
                "match",
                f"the value for {path!r} must be a dotted path in the run's input or a plain (not async) "
                f"function of the input, got {source!r}",
            )
        checked[path] = source
    return checked


def on_event(
    event: str,
    where: Callable[[Event], bool] | None = None,
    *,
    match: str | Mapping[str, str | Callable[[Any], Any]] | None = None,
) -> EventTrigger:
    """An event a workflow listens to.

    In ``@workflow(triggers=[...])`` (and `StateMachine(triggers=[...])`): every event named
    ``event`` (for which ``where(event)`` is true) starts a run, with the event as its input.

    In ``@workflow(cancel_on=[...])`` (and `StateMachine(cancel_on=[...])`): such an event
    cancels the unfinished runs of the workflow that ``match`` relates it to. ``match`` is a
    dotted path that the event's data and the run's input share (``"order_id"``: the event's
    ``data["order_id"]`` equals the input's ``["order_id"]``), or a dict from a path in the
    event's data to a path in the run's input (``{"order.id": "id"}``) or to a plain function
    of the input giving the value (``{"order_id": lambda input: input["order"]["id"]}``); all
    entries must match. Without ``match`` every unfinished run of the workflow is cancelled.
    A run started by an event has that event's ``data`` as its "input" here.

    Raises:
        InvalidArgumentError: ``event`` is not a name, ``where`` is not a plain function, or
            ``match`` is neither a path nor a dict of paths and functions.
    """
    return EventTrigger(event, where, match)


def check_triggers(owner: str, triggers: Sequence[Any] | None) -> tuple[EventTrigger, ...]:
    """``triggers=`` as declared on ``owner``, checked."""
    if triggers is None:
        return ()
    if isinstance(triggers, EventTrigger) or not isinstance(triggers, Sequence):
        raise InvalidArgumentError(owner, "triggers", f"must be a list of on_event(...), got {triggers!r}")
    for trigger in triggers:
        if not isinstance(trigger, EventTrigger):
            raise InvalidArgumentError(owner, "triggers", f"takes on_event(...) triggers, got {trigger!r}")
        if trigger.match is not None:
            raise InvalidArgumentError(
                owner,
                "triggers",
                f"{trigger!r}: match= relates a cancelling event to a run, so it belongs in cancel_on=; "
                "a trigger starts a run for every event its where= lets through",
            )
    return tuple(triggers)


def check_cancel_on(owner: str, cancel_on: Sequence[Any] | None) -> tuple[EventTrigger, ...]:
    """``cancel_on=`` as declared on ``owner``, checked."""
    if cancel_on is None:
        return ()
    if isinstance(cancel_on, EventTrigger) or not isinstance(cancel_on, Sequence):
        raise InvalidArgumentError(
            owner, "cancel_on", f"must be a list of on_event(name, match=...), got {cancel_on!r}"
        )
    for entry in cancel_on:
        if not isinstance(entry, EventTrigger):
            raise InvalidArgumentError(owner, "cancel_on", f"takes on_event(name, match=...) entries, got {entry!r}")
    return tuple(cancel_on)
