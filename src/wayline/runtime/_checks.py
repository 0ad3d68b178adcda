"""Checks of the arguments of public calls, made before anything is stored.

A wrong type that reached the store used to make a run unreadable (a run id that is an int
cannot be decoded back as a `RunRecord`), or the owner's inbox poller stop (a signal name
that is None). Everything a caller passes is checked here, at the boundary, and refused with
an `InvalidArgumentError` that names the call, the argument and what to pass instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

from .._errors import InvalidArgumentError
from ..persistence import RunStatus

#: Ids and names (run ids, signal names, versions, workflow names, error names): a key in
#: indexes and in log lines, so a bound keeps both small; 255 is what most id schemes fit in.
MAX_NAME = 255
#: Free text (a cancel reason, a failure's cause): kept in the run's history for good.
MAX_TEXT = 32 * 1024
#: A callback token is ~60 characters; anything much longer is not one.
MAX_TOKEN = 1024


def _refuse(call: str, argument: str, problem: str) -> NoReturn:
    raise InvalidArgumentError(call, argument, problem)


def _kind(value: Any) -> str:
    return f"{type(value).__name__} {value!r}" if len(repr(value)) <= 60 else type(value).__name__


def name(call: str, argument: str, value: Any, *, optional: bool = False) -> None:
    """An id or a name: a non-empty printable string of at most `MAX_NAME` characters."""
    if value is None and optional:
        return
    if not isinstance(value, str):
        _refuse(call, argument, f"must be a string{' or None' if optional else ''}, got {_kind(value)}")
    if not value:
        _refuse(call, argument, "must not be empty")
    if len(value) > MAX_NAME:
        _refuse(call, argument, f"is {len(value)} characters long; at most {MAX_NAME} are allowed")
    if not value.isprintable():
        _refuse(call, argument, f"{value!r} holds control characters (newlines, tabs, NUL...); remove them")


def text(call: str, argument: str, value: Any, *, optional: bool = True) -> None:
    """Free text: a string (or None) of at most `MAX_TEXT` characters."""
    if value is None and optional:
        return
    if not isinstance(value, str):
        _refuse(call, argument, f"must be a string{' or None' if optional else ''}, got {_kind(value)}")
    if len(value) > MAX_TEXT:
        _refuse(call, argument, f"is {len(value)} characters long; at most {MAX_TEXT} are allowed")


def token(call: str, value: Any) -> None:
    """A callback token's type and size (its form is checked where it is read)."""
    if not isinstance(value, str):
        _refuse(call, "token", f"must be the callback token string the run handed out, got {_kind(value)}")
    if len(value) > MAX_TOKEN:
        _refuse(call, "token", f"is {len(value)} characters long; a wayline callback token is under 100")


def number(call: str, argument: str, value: Any, *, optional: bool = True, minimum: float | None = None) -> None:
    """A real number (an int or a float, not a bool), at least ``minimum``."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        _refuse(call, argument, f"must be a number{' or None' if optional else ''}, got {_kind(value)}")
    if value != value:  # NaN compares unequal to itself
        _refuse(call, argument, "must be a number, got NaN")
    if minimum is not None and value < minimum:
        _refuse(call, argument, f"must be >= {minimum:g}, got {value!r}")


def count(call: str, argument: str, value: Any, *, optional: bool = True) -> None:
    """A count: an int >= 0 (not a bool)."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        _refuse(call, argument, f"must be an int{' or None' if optional else ''}, got {_kind(value)}")
    if value < 0:
        _refuse(call, argument, f"must be >= 0, got {value}")


def flag(call: str, argument: str, value: Any) -> None:
    """A bool."""
    if not isinstance(value, bool):
        _refuse(call, argument, f"must be True or False, got {_kind(value)}")


def refuse(call: str, argument: str, problem: str) -> NoReturn:
    """Raise the `InvalidArgumentError` for ``argument`` of ``call``."""
    _refuse(call, argument, problem)


def statuses(call: str, status: RunStatus | str | Sequence[RunStatus | str] | None) -> list[RunStatus] | None:
    """``status=`` of a listing: one status or several, as members or names (any case)."""
    if status is None:
        return None
    items = [status] if isinstance(status, (str, RunStatus)) else status
    if not isinstance(items, Sequence) or not all(isinstance(s, str) for s in items):
        refuse(call, "status", f"must be a RunStatus, its name, or a list of them; got {status!r}")
    try:
        return [RunStatus(s.upper()) for s in items]
    except ValueError:
        valid = ", ".join(s.value for s in RunStatus)
        refuse(call, "status", f"{status!r} holds an unknown run status; use one of {valid}")
