"""Turning command-line strings into values: JSON arguments, times, statuses, resources."""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..persistence import RunStatus
from ..runtime import StateMachine, WorkflowDef
from ._errors import CliError, UsageError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_json(text: str, what: str) -> Any:
    """``text`` as JSON; ``@FILE`` reads it from a file and ``@-`` from stdin.

    Raises:
        UsageError: it is not JSON; the message says where it breaks.
    """
    source = ""
    if text.startswith("@"):
        source = text[1:]
        text = read_text(source, what) if source != "-" else sys.stdin.read()
    origin = f" (from {source})" if source else ""
    if not text.strip():
        raise UsageError(f"{what}{origin} is empty; give a JSON value such as {{}} or null")
    try:
        return json.loads(text)
    except RecursionError:
        raise UsageError(
            f"{what}{origin} is nested too deeply to be read (more levels of lists and objects than "
            "Python allows); flatten it"
        ) from None
    except json.JSONDecodeError as exc:
        line = exc.doc.splitlines()[exc.lineno - 1] if exc.lineno <= len(exc.doc.splitlines()) else ""
        before = line[: exc.colno - 1][-30:]
        where = f"line {exc.lineno}, column {exc.colno}"
        where += f", after {before!r}" if before.strip() else " (at the start)"
        hint = ""
        if exc.pos == 0 and re.fullmatch(r"[A-Za-z_][\w.-]*", text.strip()):
            hint = f"; a JSON string needs quotes, e.g. '\"{text.strip()}\"'"
        raise UsageError(f"{what}{origin} is not valid JSON: {exc.msg} at {where}{hint}") from None


def read_text(path: str, what: str) -> str:
    """The contents of ``path``, or a `CliError` naming ``what`` the file was for."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f"{what}: file {path!r} does not exist") from None
    except IsADirectoryError:
        raise CliError(f"{what}: {path!r} is a directory, not a file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"{what}: cannot read {path!r}: {exc}") from None


def parse_since(text: str, now: float | None = None) -> float:
    """Epoch seconds for ``--since``: a duration back from now (``90s``, ``15m``, ``1h``,
    ``2d``, ``1w``) or an ISO 8601 time (UTC unless it names an offset)."""
    now = time.time() if now is None else now
    match = _DURATION.match(text)
    if match:
        return now - float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"--since {text!r} is neither a duration (30s, 15m, 1h, 2d, 1w) nor an ISO 8601 time "
            "(2026-11-22 or 2026-11-22T10:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def parse_where(items: list[str]) -> dict[str, Any]:
    """``--where``: ``KEY=VALUE`` matches the string VALUE; ``KEY:=JSON`` a number or boolean."""
    out: dict[str, Any] = {}
    for item in items:
        key, typed, raw = item.partition("=")
        if not typed or not key or key == ":":
            raise UsageError(f"--where {item!r} is not KEY=VALUE (or KEY:=JSON, e.g. amount:=5)")
        if key.endswith(":"):
            key = key[:-1]
            try:
                value = json.loads(raw)
            except ValueError:
                raise UsageError(f"--where {item!r}: {raw!r} is not JSON (write KEY=VALUE for a string)") from None
            if not isinstance(value, (int, float, bool)):
                raise UsageError(f"--where {item!r}: KEY:= takes a number or true/false; use KEY=VALUE for a string")
        else:
            value = raw
        out[key] = value
    return out


def parse_statuses(text: str) -> list[RunStatus]:
    """``--status``: one status or a comma-separated list, in any case."""
    out = []
    for part in text.split(","):
        try:
            out.append(RunStatus(part.strip().upper()))
        except ValueError:
            valid = ", ".join(s.value for s in RunStatus)
            raise UsageError(f"--status {part.strip()!r} is not a run status; use one of {valid}") from None
    return out


def import_attribute(spec: str, option: str, form: str, example: str) -> Any:
    """``MODULE:NAME``: import ``MODULE`` (the current directory first on the path, as
    ``python -m`` does) and take ``NAME`` (dotted names reach into it) from it.

    Raises:
        UsageError: ``spec`` is not of that form.
        CliError: the module cannot be imported or has no such name.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"{option} {spec!r} must be {form}, e.g. {option} {example}")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    where = option.lstrip("-") if option.startswith("--") else option
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the user's module: any error it raises on import is theirs
        raise CliError(f"{where}: cannot import module {module_name!r}: {type(exc).__name__}: {exc}") from None
    value: Any = module
    for part in attr.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise CliError(f"{where}: module {module_name!r} has no attribute {attr!r}") from None
    return value


def load_resources(spec: str) -> dict[str, Any]:
    """``--resources module:mapping``: the module's ``mapping`` of resource name or ARN to
    async callable."""
    value = import_attribute(spec, "--resources", "MODULE:MAPPING", "my_tasks:RESOURCES")
    if not isinstance(value, Mapping):
        raise CliError(
            f"--resources: {spec} is a {type(value).__name__}, not a mapping of resource name or ARN to async callable"
        )
    for name, fn in value.items():
        if not isinstance(name, str) or not callable(fn):
            raise CliError(f"--resources: entry {name!r} of {spec} must map a resource name (str) to an async callable")
    return dict(value)


def load_workflow(spec: str) -> WorkflowDef[Any, Any] | StateMachine:
    """``start module:workflow``: an ``@workflow`` function (or a `StateMachine`) of the module."""
    value = import_attribute(spec, "start", "MODULE:WORKFLOW", "my_app.flows:order")
    if not isinstance(value, WorkflowDef | StateMachine):
        hint = " (decorate it with @workflow)" if callable(value) else ""
        raise CliError(f"start: {spec} is a {type(value).__name__}, not an @workflow or a StateMachine{hint}")
    return value
