"""How a failure is recorded on a span: its public error type and the user's own frames.

The SDK's ``record_exception`` names an error by the module that defines it, which for a
wayline error is a private path (``wayline.runtime.asl._errors.StatesError``), and its stack
trace is mostly wayline's machinery and the SDK's ``use_span``. A reader of a trace wants
what can be imported and caught, and the lines of their own code that failed.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

import opentelemetry

from ..._errors import WaylineError

_WAYLINE = Path(__file__).resolve().parents[2]
#: Wayline's own modules that are user code all the same: the demo's workflow and activities.
_USER_CODE = (str(_WAYLINE / "demo"),)
_MACHINERY = (str(_WAYLINE), *(str(Path(p).resolve()) for p in opentelemetry.__path__))


def public_type(exc: BaseException) -> str:
    """The name to catch ``exc`` by: ``wayline.errors.X`` for wayline's errors (every one
    is exported there), ``module.Name`` for others (``Name`` for builtins), as the SDK does."""
    cls = type(exc)
    module = cls.__module__
    if isinstance(exc, WaylineError) and module.startswith("wayline."):
        return f"wayline.errors.{cls.__qualname__}"
    return cls.__qualname__ if module in ("builtins", "") else f"{module}.{cls.__qualname__}"


def _user_frame(filename: str) -> bool:
    try:
        path = str(Path(filename).resolve())
    except (OSError, ValueError):
        return True
    if path.startswith(_USER_CODE):
        return True
    return not path.startswith(_MACHINERY)


def user_stacktrace(exc: BaseException) -> str | None:
    """``exc``'s traceback without wayline's and the OpenTelemetry SDK's frames (None if no
    frame is left: wayline itself raised it, e.g. a state machine's ``States.Timeout``)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if _user_frame(f.filename)]
    if not frames:
        return None
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames)]
    message = str(exc)
    lines.append(f"{public_type(exc)}: {message}\n" if message else f"{public_type(exc)}\n")
    return "".join(lines)


def _origin(exc: BaseException) -> BaseException:
    """The user's exception a wayline error was raised from (a Task resource's ``ValueError``
    becomes a ``StatesError`` named "ValueError"), else ``exc``."""
    cause = exc.__cause__
    if isinstance(exc, WaylineError) and cause is not None and user_stacktrace(cause) is not None:
        return cause
    return exc


def exception_attributes(exc: BaseException | None, error: str, cause: str | None) -> dict[str, Any]:
    """The attributes of an ``exception`` span event for a failure recorded as ``error``
    (its name in the run's history) with ``cause``; ``exc`` when it is at hand."""
    attributes: dict[str, Any] = {"exception.type": error, "exception.message": cause or ""}
    if exc is not None:
        origin = _origin(exc)
        kind = attributes["exception.type"] = public_type(origin)
        attributes["exception.message"] = str(origin)
        stacktrace = user_stacktrace(origin)
        if stacktrace is not None:
            attributes["exception.stacktrace"] = stacktrace
        if not kind.endswith(error):
            attributes["wayline.error"] = error  # e.g. a state machine error name, "States.Timeout"
    return attributes
