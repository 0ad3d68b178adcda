"""JSONata expressions (``{% ... %}``), compiled once with jsonata-python.

Step Functions binds ``$states`` (input, result, errorOutput, context) and the workflow
variables, adds a few functions of its own ($partition, $range, $hash, $random, $uuid,
$parse) and leaves out ``$eval``; that is done here. Every evaluation is metered against the
machine's :class:`ExpressionBudget`, and one that is slow moves off the event loop.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

import anyio
import jsonata  # type: ignore[import-untyped]
from anyio.lowlevel import RunVar
from jsonata.functions import Functions  # type: ignore[import-untyped]
from jsonata.utils import Utils  # type: ignore[import-untyped]

from ._budget import ExpressionBudget, Meter, OverBudget, SliceOver
from ._errors import QUERY_EVALUATION_ERROR, StatesError
from ._regex import jsonata_regex_engine

__all__ = ("Expression", "compile_expression", "is_expression", "to_json_text")

_NULL = Utils.NULL_VALUE
_SIMPLE_REFERENCE = re.compile(r"^\$[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def is_expression(value: Any) -> bool:
    """Return whether ``value`` is a JSONata expression string ``{% ... %}``."""
    return type(value) is str and value.startswith("{%") and value.endswith("%}")


def to_json_text(value: Any) -> str:
    """Compact JSON, as AWS quotes values in its error messages."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def type_name(value: Any) -> str:
    """JSON type name of ``value`` as AWS spells it in messages."""
    if value is None:
        return "null"
    if type(value) is bool:
        return "boolean"
    if type(value) in (int, float):
        return "number"
    if type(value) is str:
        return "string"
    if type(value) is list:
        return "array"
    return "object"


class Expression:
    """A compiled ``{% ... %}`` expression.

    Attributes:
        source: The expression text between the delimiters, trimmed.
    """

    __slots__ = ("_compiled", "_fast", "_slow", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        # Plain references ($states.input.a.b, $var.c) are most expressions in practice;
        # walking dicts directly is ~50x cheaper than a jsonata-python evaluation. Anything
        # else, or a reference that meets an array, goes through jsonata-python.
        m = _SIMPLE_REFERENCE.match(source)
        self._fast: tuple[str, ...] | None = tuple(source[1:].split(".")) if m else None
        # Set once an evaluation outran its slice of the event loop: later ones go straight
        # to the worker thread.
        self._slow = False
        if _RESERVED in source:
            # The budget's hooks live in the evaluation's environment under these names: an
            # expression that rebinds them could run unmetered.
            raise ValueError(f"names starting with ${_RESERVED} are reserved")
        compiled = jsonata.Jsonata(source, jsonata_regex_engine)
        compiled.set_output_convert_nulls(False)
        # Inputs come from JSON (or from our own evaluation), so re-validating them on
        # every call would only cost time.
        compiled.set_validate_input(False)
        for name, fn in _AWS_FUNCTIONS.items():
            compiled.register_lambda(name, fn)
        compiled.register_function("pad", _PAD)
        self._compiled = compiled

    async def evaluate(self, bindings: Mapping[str, Any], field: str, budget: ExpressionBudget) -> Any:
        """Evaluate with ``bindings`` (``states`` plus variables), within ``budget``.

        Most evaluations take well under a millisecond and run here, on the event loop.
        One that outruns its slice (``INLINE_SLICE_SECONDS``) starts again in a worker
        thread, one at a time per event loop, so a slow expression does not hold up other
        runs; the expression is then marked slow and later evaluations go straight there.

        Raises:
            StatesError: ``States.QueryEvaluationError`` when evaluation fails, returns
                nothing, or goes past the budget; the cause names ``field`` (and the limit).
        """
        fast = self._fast
        if fast is not None:
            cur: Any = bindings
            for name in fast:
                if type(cur) is not dict:
                    break
                if name not in cur:
                    raise self._undefined(field)
                cur = cur[name]
            else:
                # Same normalisation as a jsonata-python result (integral floats -> ints).
                return _plain(cur)
        bound = {k: (_NULL if v is None else v) for k, v in bindings.items()}
        if not self._slow:
            try:
                return self._run(bound, field, Meter(budget, INLINE_SLICE_SECONDS))
            except SliceOver:
                self._slow = True
        meter = Meter(budget)
        try:
            return await anyio.to_thread.run_sync(
                self._run, bound, field, meter, abandon_on_cancel=True, limiter=_thread_limiter()
            )
        except anyio.get_cancelled_exc_class():
            meter.cancel()  # the abandoned thread stops at its next node
            raise
        finally:
            # A first evaluation, a garbage collection or a busy machine can make a cheap
            # expression miss its slice once: if it ran within the slice here, it goes back
            # to the event loop next time.
            if meter.elapsed() < INLINE_SLICE_SECONDS:
                self._slow = False

    def _run(self, bound: dict[str, Any], field: str, meter: Meter) -> Any:
        """Evaluate on the current thread, metered (the bindings get the meter's hooks)."""
        bound[_ENTRY] = meter.entry
        bound[_EXIT] = meter.exit
        _current.meter = meter
        compiled = self._compiled
        # $now() and $millis() read the timestamp of this thread's jsonata-python instance,
        # which evaluate() does not set (it sets its own): they answered the time the last
        # expression was compiled, or, on the worker thread, when it first evaluated one.
        compiled.get_per_thread_instance().timestamp = round(time.time() * 1000)
        meter.start()
        try:
            result = compiled.evaluate(None, bound)
        except OverBudget as over:
            raise StatesError(
                QUERY_EVALUATION_ERROR,
                f"The JSONata expression '{self.source}' specified for the field '{field}' "
                f"threw an error during evaluation. It went past its budget: {over.detail} "
                f"(ExpressionBudget.{over.limit}; simplify the expression, or give the state "
                "machine a larger budget with StateMachine(..., expression_budget=...)).",
            ) from None
        except (StatesError, SliceOver):
            raise
        except Exception as exc:  # jsonata-python raises JException and plain errors
            code = getattr(exc, "error", None)
            # jsonata-python's message table says "Object" where the reference JavaScript
            # implementation (and so AWS) says "function".
            detail = f"{code}: {str(exc).replace('Object', 'function')}" if code else str(exc)
            raise StatesError(
                QUERY_EVALUATION_ERROR,
                f"The JSONata expression '{self.source}' specified for the field '{field}' "
                f"threw an error during evaluation. {detail}",
            ) from None
        finally:
            meter.stop()
            _current.meter = None
        if result is None:
            raise self._undefined(field)
        return _plain(result)

    def _undefined(self, field: str) -> StatesError:
        return StatesError(
            QUERY_EVALUATION_ERROR,
            f"The JSONata expression '{self.source}' specified for the field '{field}' returned nothing (undefined).",
        )

    def unexpected_type(self, field: str, expected: str, value: Any) -> StatesError:
        """Build the error AWS raises when a result has the wrong JSON type."""
        return StatesError(
            QUERY_EVALUATION_ERROR,
            f"The JSONata expression '{self.source}' specified for the field '{field}' "
            f"returned an unexpected result type. Expected '{expected}', but was "
            f"'{type_name(value)}' for value: {to_json_text(value)}",
        )


# How long an evaluation may hold the event loop before it moves to a worker thread. Most
# expressions take 0.05 to 0.2 ms in jsonata-python, so they never leave the loop (a thread
# hop costs about as much again); 2 ms is the longest another run's timer waits for one
# expression the first time it is slow.
INLINE_SLICE_SECONDS = 0.002

_RESERVED = "__evaluate"
_ENTRY = "__evaluate_entry"
_EXIT = "__evaluate_exit"
# The meter of the evaluation running on this thread, for the functions below that check a
# size before they build a value.
_current = threading.local()
# One worker thread per event loop evaluates slow expressions: a second one would only take
# turns at the GIL with the first, and with the event loop.
_LIMITER: RunVar[anyio.CapacityLimiter] = RunVar("wayline_asl_expression_limiter")


def _thread_limiter() -> anyio.CapacityLimiter:
    try:
        return _LIMITER.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(1)
        _LIMITER.set(limiter)
        return limiter


class _CheckedPad(jsonata.Jsonata.JNativeFunction):  # type: ignore[misc]
    """``$pad`` with the width checked against the budget before the string is built
    (``$pad('', 100000000)`` would otherwise allocate 100 MB in one call)."""

    def __init__(self) -> None:
        super().__init__("pad", "<s-ns?:s>", Functions, None)

    def call(self, input: Any, args: Any) -> Any:
        meter = getattr(_current, "meter", None)
        if meter is not None and args and len(args) > 1 and type(args[1]) in (int, float):
            meter.check_build(abs(int(args[1])), "a padded string", "characters")
        return super().call(input, args)


_PAD = _CheckedPad()


_CACHE: dict[str, Expression] = {}


def compile_expression(text: str) -> Expression:
    """Compile (and cache) a ``{% ... %}`` string.

    Raises:
        ValueError: The expression does not parse.
    """
    source = text[2:-2].strip()
    cached = _CACHE.get(source)
    if cached is not None:
        return cached
    try:
        expr = Expression(source)
    except Exception as exc:
        raise ValueError(f"invalid JSONata expression {source!r}: {exc}") from None
    _CACHE[source] = expr
    return expr


def _plain(value: Any) -> Any:
    """Turn jsonata-python's result (NULL_VALUE, JList, sequences) into plain JSON data."""
    t = type(value)
    if t is str or t is int or t is bool:
        return value
    if t is float:
        # JavaScript has one number type; AWS prints integral results without a fraction.
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if value is _NULL or value is None:
        return None
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if callable(value) or hasattr(value, "call"):
        return {}
    return value


# ---------------------------------------------------------------- Step Functions additions


def _fail(message: str) -> StatesError:
    return StatesError(QUERY_EVALUATION_ERROR, message)


def _partition(array: Any = None, size: Any = None) -> Any:
    if not isinstance(array, list) or type(size) not in (int, float) or size < 1:
        raise _fail("$partition expects an array and a positive chunk size")
    n = int(size)
    return [list(array[i : i + n]) for i in range(0, len(array), n)]


def _range(start: Any = None, end: Any = None, step: Any = None) -> Any:
    nums = (start, end, step)
    if any(type(x) not in (int, float) for x in nums) or step == 0:
        raise _fail("$range expects numeric start, end and a non-zero step")
    out = []
    cur = start
    while (step > 0 and cur <= end) or (step < 0 and cur >= end):
        out.append(cur)
        cur += step
        if len(out) > 1000:
            raise _fail("$range can return at most 1000 items")
    return out


_HASHES = {"MD5": "md5", "SHA-1": "sha1", "SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512"}


def _hash(data: Any = None, algorithm: Any = None) -> Any:
    if algorithm not in _HASHES:
        raise _fail(f"$hash does not support the algorithm {to_json_text(algorithm)}")
    text = data if type(data) is str else to_json_text(_plain(data))
    return hashlib.new(_HASHES[algorithm], text.encode()).hexdigest()


def _random(seed: Any = None) -> Any:
    if seed is None:
        return random.random()
    return random.Random(seed).random()


def _uuid() -> Any:
    return str(uuid.uuid4())


def _eval(*args: Any) -> Any:
    # Step Functions leaves $eval out of its JSONata. Here it would also be a way around the
    # budget: an expression built from a string could rebind the meter's hooks.
    raise _fail("$eval is not available in Step Functions' JSONata; use $parse to read JSON text")


def _parse(text: Any = None) -> Any:
    if type(text) is not str:
        raise _fail("$parse expects a string")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(f"$parse could not parse the string: {exc}") from None


_AWS_FUNCTIONS = {
    "partition": _partition,
    "range": _range,
    "hash": _hash,
    "random": _random,
    "uuid": _uuid,
    "parse": _parse,
    "eval": _eval,
}
