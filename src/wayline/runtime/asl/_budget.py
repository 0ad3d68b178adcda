"""What one evaluation of a JSONata expression may spend, and the meter that enforces it.

A JSONata expression runs on user data, and JSONata is a full language: a recursive
function, a loop written as tail recursion, or paths nested over a large array (a cartesian
product) can run for minutes. jsonata-python calls a hook before and after it evaluates each
node of the expression; :class:`Meter` is that hook, and it stops the evaluation when the
time, the nesting depth or the size of a value goes past its :class:`ExpressionBudget`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from jsonata.utils import Utils  # type: ignore[import-untyped]

from ._errors import ExpressionBudgetError

__all__ = ("DEFAULT_MAX_LENGTH", "ExpressionBudget", "Meter", "OverBudget", "SliceOver")

_RANGE_LIST = Utils.RangeList
_clock = time.perf_counter
# Four times AWS's 256 KiB payload limit: see ExpressionBudget.max_length.
DEFAULT_MAX_LENGTH = 4 * 262_144
# The largest range or padded string an evaluation on the event loop builds itself (well
# under a millisecond of work); a larger one is built in the worker thread.
INLINE_BUILD_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class ExpressionBudget:
    """The limits of one evaluation of a JSONata expression (``{% ... %}``).

    An evaluation that goes past one fails its state with ``States.QueryEvaluationError``,
    whose cause names the limit; Retry and Catch see it as any other error of the state.
    Give a state machine other limits with ``StateMachine(..., expression_budget=...)``.

    Attributes:
        seconds: Wall-clock time of one evaluation. Default 5.0: the slowest legitimate
            expression we measured (sorting 2,500 objects, 165 KB, with a comparator
            function) took 0.7 s on the 2-core development machine, and 5 s leaves room for
            a loaded machine while bounding what a runaway expression costs. The time is
            spent off the event loop (see the README), so other runs do not wait for it.
        max_depth: How deeply evaluation may nest: each sub-expression and each call of a
            function is a level. Default 1000: a recursive function can call itself about
            330 times, and Python's own recursion limit, which would otherwise end the
            evaluation with a less useful error, is reached only at 1,500 to 3,000 levels.
        max_length: The longest string or array any part of an expression may produce,
            including ranges (``[1..n]``, checked before the array is built) and ``$pad``
            (checked before the string is built). Default 1,048,576: four times the largest
            state payload AWS accepts (256 KiB), so no value a state can pass on is refused,
            while building one costs at most about 60 ms of CPU. A state machine with a
            larger ``max_payload_bytes`` gets four times that by default.

    Raises:
        ExpressionBudgetError: A limit is not a positive number.
    """

    seconds: float = 5.0
    max_depth: int = 1000
    max_length: int = DEFAULT_MAX_LENGTH

    def __post_init__(self) -> None:
        seconds = self.seconds
        if type(seconds) not in (int, float) or not seconds > 0 or seconds == float("inf"):
            raise ExpressionBudgetError("seconds", seconds)
        for name in ("max_depth", "max_length"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ExpressionBudgetError(name, value)


class OverBudget(BaseException):
    """An evaluation went past a limit of its budget.

    A BaseException, so that no ``except Exception`` inside jsonata-python turns it into one
    of its own errors (its ``and``/``or`` operators do that to any other exception).

    Attributes:
        limit: ``"seconds"``, ``"max_depth"`` or ``"max_length"``.
        detail: What went past it, for the cause.
    """

    def __init__(self, limit: str, detail: str) -> None:
        self.limit = limit
        self.detail = detail
        super().__init__(limit, detail)


class SliceOver(BaseException):
    """An evaluation on the event loop used up its slice: it goes on in a worker thread."""


class Meter:
    """The budget of one evaluation, checked on every node jsonata-python evaluates.

    ``entry`` and ``exit`` are bound in the evaluation's environment as jsonata-python's
    ``__evaluate_entry`` / ``__evaluate_exit`` hooks. One meter serves one evaluation, in
    one thread, so it needs no lock.

    Args:
        budget: The limits.
        slice_seconds: When set, the evaluation runs on the event loop and may take only
            this long before :class:`SliceOver` sends it to a worker thread.
    """

    __slots__ = (
        "_ended",
        "_max_depth",
        "_max_length",
        "_started",
        "_stop_at",
        "budget",
        "cancelled",
        "depth",
        "slice_seconds",
    )

    def __init__(self, budget: ExpressionBudget, slice_seconds: float | None = None) -> None:
        self.budget = budget
        self.slice_seconds = slice_seconds
        self._max_depth = budget.max_depth
        self._max_length = budget.max_length
        self.depth = 0
        self.cancelled = False
        self._started = 0.0
        self._ended = 0.0
        self._stop_at = 0.0

    def start(self) -> None:
        """Start the clock (in the thread that evaluates, once it runs)."""
        limit = self.budget.seconds
        if self.slice_seconds is not None:
            limit = min(limit, self.slice_seconds)
        self.depth = 0
        self._started = _clock()
        self._stop_at = self._started + limit

    def stop(self) -> None:
        """Stop the clock: the evaluation ended (in its own thread, so no hop back counts)."""
        self._ended = _clock()

    def elapsed(self) -> float:
        """Seconds the evaluation ran (infinite if it never started or never ended)."""
        if not self._started or not self._ended:
            return float("inf")
        return self._ended - self._started

    def cancel(self) -> None:
        """Stop the evaluation at its next node: the run that waited for it was cancelled."""
        self.cancelled = True
        self._stop_at = 0.0

    # entry and exit run for every node of every metered evaluation: they read only slots
    # and compare, and build a message only when a limit is passed. Measured over the
    # JSONata conformance cases, metering costs 10 to 20% of their executions/s.

    def entry(self, expr: Any, input: Any, environment: Any) -> None:
        # jsonata-python skips its own hooks while environment.is_parallel_call is set, and
        # never clears that flag after an array constructor, so every node is counted here.
        depth = self.depth = self.depth + 1
        if depth > self._max_depth:
            raise OverBudget("max_depth", f"it nested deeper than {self._max_depth} levels")
        if _clock() > self._stop_at:
            raise self._late()

    def exit(self, expr: Any, input: Any, environment: Any, result: Any) -> None:
        self.depth -= 1
        kind = type(result)
        if kind is str:
            if len(result) > self._max_length:
                self.check_length(len(result), "a string", "characters")
        elif kind is _RANGE_LIST:
            # A range is lazy until something iterates it: checking its length here stops
            # [1..10000000] before the ten million items are made.
            self.check_build(result.b - result.a, "a range", "items")
        elif isinstance(result, list) and len(result) > self._max_length:
            self.check_length(len(result), "an array", "items")

    def check_length(self, length: int, what: str, unit: str) -> None:
        """Fail when ``what`` of ``length`` ``unit`` would be longer than the budget allows."""
        limit = self.budget.max_length
        if length > limit:
            raise OverBudget("max_length", f"it would build {what} of {length:,} {unit}, more than {limit:,}")

    def check_build(self, length: int, what: str, unit: str) -> None:
        """Check a value about to be built in one step (a range, a padded string).

        Building it holds the GIL throughout (about 60 ns an item for a range), so on the
        event loop anything larger than ``INLINE_BUILD_LIMIT`` moves to the worker thread
        first, and anything larger than ``max_length`` fails.
        """
        self.check_length(length, what, unit)
        if self.slice_seconds is not None and length > INLINE_BUILD_LIMIT:
            raise SliceOver()

    def _late(self) -> BaseException:
        if self.cancelled:
            return OverBudget("seconds", "the run was cancelled")
        if self.slice_seconds is not None and self.slice_seconds < self.budget.seconds:
            return SliceOver()
        return OverBudget("seconds", f"it ran longer than {self.budget.seconds:g} s")
