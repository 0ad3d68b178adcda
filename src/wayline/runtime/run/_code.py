"""Driving a code-first workflow body: one step of its coroutine with ``send``/``throw``.

The body never runs as a task of its own: whoever performs a run's `Resume` effect steps it
here, and what the body did comes back as a message for the state machine. A command it
awaits (``ctx.run``, ``ctx.sleep``...) yields itself, so stepping the body runs it exactly up
to its next await of the run and no further.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from ..._errors import Cancelled, ContinueAsNew, VarsError
from .._vars import VarsGuard
from ._messages import Raised, Returned, Yielded


def step(
    body: Coroutine[Any, Any, Any],
    value: Any,
    error: BaseException | None,
    guard: VarsGuard | None = None,
) -> Yielded | Returned | Raised:
    """Resume ``body`` with ``value`` (or throw ``error`` into it) until it blocks or ends.

    ``guard`` (typed vars) checks them each time the body blocks or ends, before anything is
    recorded: its `VarsError` is thrown into the body at the ``await`` that blocked (the
    command is dropped), or fails the run if the body returned (the vars rolled back to the
    last that fitted).

    Raises:
        BaseException: what escaped the body other than an `Exception`, `Cancelled` or
            `ContinueAsNew` (a crash of the run: the supervisor decides what happens next).
    """
    while True:
        try:
            if error is None:
                command = body.send(value)
            else:
                try:
                    command = body.throw(error)
                finally:
                    # The error's traceback holds this frame: without this local, the two are
                    # not a cycle, and an ended run is freed by reference counting.
                    error = None
        except StopIteration as stop:
            if guard is not None:
                try:
                    guard.check()
                except VarsError as exc:
                    guard.rollback()
                    return Raised(exc)
            return Returned(stop.value)
        except (Exception, Cancelled, ContinueAsNew) as exc:
            if guard is not None:
                try:
                    guard.check()
                except VarsError:
                    guard.rollback()  # the run ends with its own error; no wrong vars stored
            return Raised(exc)
        if guard is None:
            return Yielded(command)
        try:
            guard.check()
        except VarsError as exc:
            value, error = None, exc
            continue
        return Yielded(command)
