"""Typed run variables: ``@workflow(vars=OrderVars)``.

``ctx.vars`` is then an instance of that type (a msgspec Struct, a dataclass or a TypedDict),
made with no arguments when the body starts, so every field needs a default. Neither a Struct
nor a dataclass checks its fields when they are assigned, so the runtime checks the whole value
before each checkpoint: each time the body awaits something of its run (a step, a sleep, a
signal...) and when it returns. A value that does not fit raises `VarsError`, naming the
field, into the body at that ``await`` (nothing was recorded: the body may fix the value and
go on), or fails the run if the body returned; no wrong value ever reaches the snapshot.

The snapshot and ``describe`` hold the vars as plain JSON-like data (``msgspec.to_builtins``).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, is_typeddict

import msgspec

from .._errors import VarsError
from ..persistence import Secret, secret_dec_hook

_PATH = re.compile(r" - at `\$(?:\.)?(.*)`$")


def plain(value: Any) -> dict[str, Any]:
    """Vars as stored: a dict of JSON-like values (untyped vars are a dict already)."""
    if type(value) is dict:
        return value
    out = msgspec.to_builtins(value, builtin_types=(Secret,))
    if not isinstance(out, dict):
        raise TypeError(f"ctx.vars must be a mapping or a struct, got {type(value).__name__}")
    return out


class VarsSchema:
    """The declared type of a workflow's vars, and its checks."""

    __slots__ = ("_decoder", "type", "workflow")

    def __init__(self, workflow: str, tp: Any) -> None:
        self.workflow = workflow
        self.type = tp
        if not (
            isinstance(tp, type) and (issubclass(tp, msgspec.Struct) or dataclasses.is_dataclass(tp))
        ) and not is_typeddict(tp):
            raise VarsError(workflow, f"vars= takes a msgspec Struct, a dataclass or a TypedDict, got {tp!r}")
        try:
            self.initial()
        except (TypeError, msgspec.ValidationError) as exc:
            raise VarsError(
                workflow,
                f"{getattr(tp, '__name__', tp)} must be constructible with no arguments, so that a run's "
                f"vars can start empty: give every field a default ({exc})",
            ) from None

    def initial(self) -> Any:
        """A fresh value for a new body: the type's defaults."""
        if is_typeddict(self.type):
            return msgspec.convert({}, self.type, dec_hook=secret_dec_hook)
        return self.type()

    def check(self, value: Any, run_id: str | None = None) -> dict[str, Any]:
        """Raise `VarsError` unless ``value`` is a valid instance of the type, field by field;
        returns the value as plain data.

        Raises:
            VarsError: naming the first field that does not fit.
        """
        expected = dict if is_typeddict(self.type) else self.type
        if not isinstance(value, expected):
            raise VarsError(
                self.workflow,
                f"ctx.vars was replaced by a {type(value).__name__}; it must stay a {self.type.__name__} "
                "(assign its fields instead)",
                run_id=run_id,
            )
        try:
            data: dict[str, Any] = msgspec.to_builtins(value, builtin_types=(Secret,))
            msgspec.convert(data, self.type, dec_hook=secret_dec_hook)
        except msgspec.ValidationError as exc:
            text = str(exc)
            match = _PATH.search(text)
            field = match.group(1) if match else None
            problem = text[: match.start()] if match else text
            raise VarsError(self.workflow, problem, field=field or None, run_id=run_id) from None
        except (TypeError, ValueError, OverflowError) as exc:  # to_builtins: a value that is no data
            raise VarsError(self.workflow, f"a value is not storable data: {exc}", run_id=run_id) from None
        return data


class VarsGuard:
    """The checks of one body's typed vars (see `wayline.runtime.run._code.step`)."""

    __slots__ = ("_ctx", "_last", "_run_id", "_schema")

    def __init__(self, ctx: Any, schema: VarsSchema, run_id: str) -> None:
        self._ctx = ctx
        self._schema = schema
        self._run_id = run_id
        self._last: dict[str, Any] = plain_or_empty(ctx.vars)

    def check(self) -> None:
        """Before a checkpoint: raise `VarsError` if the vars do not fit their type."""
        self._last = self._schema.check(self._ctx.vars, self._run_id)

    def rollback(self) -> None:
        """The body ended with vars that do not fit: back to the last ones that did, so the
        final snapshot holds no wrong value."""
        self._ctx.vars = msgspec.convert(self._last, self._schema.type, dec_hook=secret_dec_hook)


def plain_or_empty(value: Any) -> dict[str, Any]:
    try:
        return plain(value)
    except TypeError:
        return {}


def typed_vars(ctx: Any, schema: VarsSchema | None, run_id: str) -> VarsGuard | None:
    """Give a body's context its typed vars (the type's defaults); returns the guard to check
    them before each checkpoint (None for untyped vars, which stay a plain dict)."""
    if schema is None:
        return None
    ctx.vars = schema.initial()
    return VarsGuard(ctx, schema, run_id)
