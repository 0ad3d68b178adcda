"""Choice rules: the comparison operators, And/Or/Not, and JSONata ``Condition``."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from ._budget import ExpressionBudget
from ._errors import QUERY_EVALUATION_ERROR, RUNTIME, StatesError
from ._jsonata import compile_expression, is_expression
from ._jsonpath import JsonPath, PathNotFound, compile_path

__all__ = (
    "COMPARATORS",
    "compile_condition",
    "compile_glob",
    "compile_rule",
    "parse_timestamp",
    "parse_wait_timestamp",
)

Lookup = Callable[[str], Any]
Rule = Callable[[Any, Any, Lookup], bool]

_TS = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def parse_timestamp(value: Any) -> datetime | None:
    """Parse an RFC 3339 timestamp as ASL requires (uppercase T, an explicit offset)."""
    if type(value) is not str:
        return None
    m = _TS.match(value)
    if not m:
        return None
    frac = m.group(7) or ""
    text = value[: m.start(7)] if frac else value[: m.start(8)]
    zone = m.group(8)
    micro = (frac[1:] + "000000")[:6] if frac else "000000"
    try:
        return datetime.fromisoformat(f"{text}.{micro}{'+00:00' if zone == 'Z' else zone}")
    except ValueError:
        return None


_WAIT_TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


def parse_wait_timestamp(value: Any) -> float | None:
    """Parse a Wait state's timestamp: UTC only (``Z``), fraction optional, as AWS does.

    Returns epoch seconds, or None when the value is not such a timestamp.
    """
    if type(value) is not str or not _WAIT_TS.match(value):
        return None
    ts = parse_timestamp(value)
    return None if ts is None else ts.timestamp()


def _is_num(v: Any) -> bool:
    t = type(v)
    return t is int or t is float


def compile_glob(pattern: str) -> Callable[[str], bool]:
    """Compile a ``StringMatches`` pattern into a test that runs in time linear in the text.

    As the States Language says: ``*`` matches any run of characters, possibly empty; a
    backslash makes the next character literal (``\\*`` is a star); nothing else is special.

    The pattern splits at its unescaped stars into literal pieces. The first must start the
    text and the last must end it; each piece between them is taken at its leftmost place
    after the one before. Leftmost is never worse for a later piece, so one left-to-right
    pass decides, where a backtracking regex (``.*a.*a.*...b``) takes exponential time.
    """
    pieces: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            current.append(pattern[i + 1])
            i += 2
            continue
        if c == "*":
            pieces.append("".join(current))
            current = []
        else:
            current.append(c)
        i += 1
    pieces.append("".join(current))
    if len(pieces) == 1:
        literal = pieces[0]
        return lambda text: text == literal
    head, tail = pieces[0], pieces[-1]
    middle = [p for p in pieces[1:-1] if p]
    shortest = len(head) + len(tail) + sum(len(p) for p in middle)

    def match(text: str) -> bool:
        if len(text) < shortest or not text.startswith(head) or not text.endswith(tail):
            return False
        pos, end = len(head), len(text) - len(tail)
        for piece in middle:
            found = text.find(piece, pos, end)
            if found < 0:
                return False
            pos = found + len(piece)
        return True

    return match


def _cmp(kind: str, op: str) -> Callable[[Any, Any], bool]:
    def check(a: Any, b: Any) -> bool:
        if kind == "String":
            if type(a) is not str or type(b) is not str:
                return False
        elif kind == "Numeric":
            if not _is_num(a) or not _is_num(b):
                return False
        elif kind == "Boolean":
            if type(a) is not bool or type(b) is not bool:
                return False
        else:
            a, b = parse_timestamp(a), parse_timestamp(b)
            if a is None or b is None:
                return False
        if op == "Equals":
            return bool(a == b)
        if op == "LessThan":
            return bool(a < b)
        if op == "GreaterThan":
            return bool(a > b)
        if op == "LessThanEquals":
            return bool(a <= b)
        return bool(a >= b)

    return check


COMPARATORS: dict[str, Callable[[Any, Any], bool]] = {}
for _kind in ("String", "Numeric", "Timestamp"):
    for _op in ("Equals", "LessThan", "GreaterThan", "LessThanEquals", "GreaterThanEquals"):
        COMPARATORS[_kind + _op] = _cmp(_kind, _op)
COMPARATORS["BooleanEquals"] = _cmp("Boolean", "Equals")

_TYPE_TESTS: dict[str, Callable[[Any], bool]] = {
    "IsNull": lambda v: v is None,
    "IsNumeric": _is_num,
    "IsString": lambda v: type(v) is str,
    "IsBoolean": lambda v: type(v) is bool,
    "IsTimestamp": lambda v: parse_timestamp(v) is not None,
}

_MISSING = object()


def _resolve(path: JsonPath, data: Any, context: Any, lookup: Lookup) -> Any:
    try:
        return path.get(data, context, lookup)
    except PathNotFound:
        return _MISSING


def _invalid_path(path: JsonPath) -> StatesError:
    return StatesError(
        RUNTIME,
        f"Invalid path '{path.text}': The choice state's condition path references an invalid value.",
    )


def compile_rule(rule: Any, where: str, problems: list[str], top: bool) -> Rule:
    """Compile a JSONPath-language choice rule (with ``Variable``, or And/Or/Not).

    ``top`` is True for a rule directly in ``Choices`` (which must have ``Next``).
    """
    if type(rule) is not dict:
        problems.append(f"{where}: a choice rule must be an object")
        return lambda d, c, lk: False
    allowed_meta = {"Next", "Assign", "Comment"} if top else {"Comment"}
    if "And" in rule or "Or" in rule:
        key = "And" if "And" in rule else "Or"
        subs = rule[key]
        if type(subs) is not list or not subs:
            problems.append(f"{where}/{key}: must be a non-empty array of rules")
            return lambda d, c, lk: False
        fns = [compile_rule(s, f"{where}/{key}/{i}", problems, False) for i, s in enumerate(subs)]
        _extra(rule, {key, *allowed_meta}, where, problems)
        if key == "And":
            return lambda d, c, lk: all(f(d, c, lk) for f in fns)
        return lambda d, c, lk: any(f(d, c, lk) for f in fns)
    if "Not" in rule:
        inner = compile_rule(rule["Not"], f"{where}/Not", problems, False)
        _extra(rule, {"Not", *allowed_meta}, where, problems)
        return lambda d, c, lk: not inner(d, c, lk)
    if "Variable" not in rule:
        problems.append(f"{where}: a choice rule needs Variable, And, Or, Not or Condition")
        return lambda d, c, lk: False
    try:
        var = compile_path(rule["Variable"]) if type(rule["Variable"]) is str else None
    except ValueError as exc:
        problems.append(f"{where}/Variable: {exc}")
        return lambda d, c, lk: False
    if var is None:
        problems.append(f"{where}/Variable: must be a JSONPath string")
        return lambda d, c, lk: False
    ops = [k for k in rule if k not in ("Variable", *allowed_meta)]
    if len(ops) != 1:
        problems.append(f"{where}: a choice rule needs exactly one comparison operator, got {ops or 'none'}")
        return lambda d, c, lk: False
    op = ops[0]
    operand = rule[op]
    if op == "IsPresent":
        if type(operand) is not bool:
            problems.append(f"{where}/IsPresent: must be true or false")
        want = operand is True
        return lambda d, c, lk: (_resolve(var, d, c, lk) is not _MISSING) == want
    if op in _TYPE_TESTS:
        test = _TYPE_TESTS[op]
        if type(operand) is not bool:
            problems.append(f"{where}/{op}: must be true or false")
        want = operand is True

        def type_test(d: Any, c: Any, lk: Lookup) -> bool:
            v = _resolve(var, d, c, lk)
            if v is _MISSING:
                # Only IsPresent may look at a path that does not exist.
                raise _invalid_path(var)
            return test(v) == want

        return type_test
    if op == "StringMatches":
        if type(operand) is not str:
            problems.append(f"{where}/StringMatches: must be a string")
            return lambda d, c, lk: False
        glob = compile_glob(operand)

        def matches(d: Any, c: Any, lk: Lookup) -> bool:
            v = _resolve(var, d, c, lk)
            if v is _MISSING:
                raise _invalid_path(var)
            return type(v) is str and glob(v)

        return matches
    base = op[:-4] if op.endswith("Path") else op
    if base not in COMPARATORS:
        problems.append(f"{where}: unknown comparison operator {op!r}")
        return lambda d, c, lk: False
    compare = COMPARATORS[base]
    if op.endswith("Path"):
        try:
            other = compile_path(operand) if type(operand) is str else None
        except ValueError as exc:
            problems.append(f"{where}/{op}: {exc}")
            return lambda d, c, lk: False
        if other is None:
            problems.append(f"{where}/{op}: must be a JSONPath string")
            return lambda d, c, lk: False

        def compare_paths(d: Any, c: Any, lk: Lookup) -> bool:
            v = _resolve(var, d, c, lk)
            if v is _MISSING:
                raise _invalid_path(var)
            w = _resolve(other, d, c, lk)
            if w is _MISSING:
                raise _invalid_path(other)
            return compare(v, w)

        return compare_paths
    _check_operand(base, operand, f"{where}/{op}", problems)

    def compare_value(d: Any, c: Any, lk: Lookup) -> bool:
        v = _resolve(var, d, c, lk)
        if v is _MISSING:
            raise _invalid_path(var)
        return compare(v, operand)

    return compare_value


def _check_operand(op: str, operand: Any, where: str, problems: list[str]) -> None:
    if op.startswith("String") and type(operand) is not str:
        problems.append(f"{where}: must be a string")
    elif op.startswith("Numeric") and not _is_num(operand):
        problems.append(f"{where}: must be a number")
    elif op.startswith("Boolean") and type(operand) is not bool:
        problems.append(f"{where}: must be true or false")
    elif op.startswith("Timestamp") and parse_timestamp(operand) is None:
        problems.append(f"{where}: must be an RFC 3339 timestamp")


def _extra(rule: dict[str, Any], allowed: set[str], where: str, problems: list[str]) -> None:
    for key in rule:
        if key not in allowed:
            problems.append(f"{where}/{key}: field not allowed here")


Condition = Callable[[Mapping[str, Any], ExpressionBudget], Awaitable[bool]]


def compile_condition(value: Any, where: str, problems: list[str]) -> Condition:
    """Compile a JSONata ``Condition`` (an expression or a boolean constant)."""
    if type(value) is bool:
        return _constant(value)
    if not is_expression(value):
        problems.append(f"{where}/Condition: must be a JSONata expression or a boolean")
        return _constant(False)
    try:
        expr = compile_expression(value)
    except ValueError as exc:
        problems.append(f"{where}/Condition: {exc}")
        return _constant(False)

    async def evaluate(bindings: Mapping[str, Any], budget: ExpressionBudget) -> bool:
        result = await expr.evaluate(bindings, "Condition", budget)
        if type(result) is not bool:
            raise StatesError(QUERY_EVALUATION_ERROR, expr.unexpected_type("Condition", "boolean", result).cause)
        return result

    return evaluate


def _constant(value: bool) -> Condition:
    async def constant(bindings: Mapping[str, Any], budget: ExpressionBudget) -> bool:
        return value

    return constant
