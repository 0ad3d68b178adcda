"""Intrinsic functions (``States.Format(...)`` and friends), parsed once, evaluated fast."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import uuid
from collections.abc import Callable
from typing import Any

from ._errors import INTRINSIC_FAILURE, StatesError
from ._jsonpath import JsonPath, PathNotFound, compile_path

__all__ = ("Intrinsic", "compile_intrinsic", "is_intrinsic")

Lookup = Callable[[str], Any]


def is_intrinsic(text: str) -> bool:
    """Return whether ``text`` is an intrinsic function call."""
    return text.startswith("States.") and text.rstrip().endswith(")")


class IntrinsicSyntaxError(ValueError):
    """An intrinsic call that cannot be parsed (reported at validation)."""


# An argument is ("lit", value) | ("path", JsonPath) | ("call", Intrinsic).
Arg = tuple[str, Any]


class Intrinsic:
    """A parsed intrinsic function call."""

    __slots__ = ("args", "fn", "name", "text")

    def __init__(self, text: str, name: str, args: list[Arg]) -> None:
        self.text = text
        self.name = name
        self.args = tuple(args)
        impl = _FUNCTIONS.get(name)
        if impl is None:
            raise IntrinsicSyntaxError(f"unknown intrinsic function {name!r} in {text!r}")
        self.fn = impl

    def evaluate(self, data: Any, context: Any, lookup: Lookup) -> Any:
        """Evaluate the call against the state data.

        Raises:
            StatesError: ``States.IntrinsicFailure`` (bad arguments) or ``States.Runtime``.
        """
        values = []
        for kind, arg in self.args:
            if kind == "lit":
                values.append(arg)
            elif kind == "path":
                try:
                    values.append(arg.get(data, context, lookup))
                except PathNotFound:
                    raise StatesError(
                        INTRINSIC_FAILURE,
                        f"Invalid path '{arg.text}' : No results for path: {arg.canonical()}",
                    ) from None
            else:
                values.append(arg.evaluate(data, context, lookup))
        try:
            return self.fn(values)
        except StatesError:
            raise
        except RecursionError:
            # User data nested thousands of levels deep (States.StringToJson('[[[[...')).
            raise StatesError(
                INTRINSIC_FAILURE, f"Invalid arguments in {self.name}: the value is nested too deeply"
            ) from None
        except (TypeError, ValueError, IndexError, KeyError, OverflowError) as exc:
            raise StatesError(INTRINSIC_FAILURE, f"Invalid arguments in {self.name}: {exc}") from None


_CACHE: dict[str, Intrinsic] = {}


def compile_intrinsic(text: str) -> Intrinsic:
    """Parse (and cache) an intrinsic call.

    Raises:
        IntrinsicSyntaxError: The text is not a valid call.
    """
    cached = _CACHE.get(text)
    if cached is not None:
        return cached
    parser = _Parser(text)
    call = parser.call()
    parser.ws()
    if parser.pos != len(text):
        raise IntrinsicSyntaxError(f"unexpected text after the call in {text!r}")
    _CACHE[text] = call
    return call


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, why: str) -> IntrinsicSyntaxError:
        return IntrinsicSyntaxError(f"invalid intrinsic function {self.text!r}: {why}")

    def ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t\n":
            self.pos += 1

    def call(self) -> Intrinsic:
        text = self.text
        start = self.pos
        paren = text.find("(", start)
        if paren < 0:
            raise self.fail("missing '('")
        name = text[start:paren].strip()
        self.pos = paren + 1
        args: list[Arg] = []
        self.ws()
        if self.pos < len(text) and text[self.pos] == ")":
            self.pos += 1
            return Intrinsic(text, name, args)
        while True:
            self.ws()
            args.append(self.arg())
            self.ws()
            if self.pos >= len(text):
                raise self.fail("missing ')'")
            if text[self.pos] == ",":
                self.pos += 1
                continue
            if text[self.pos] == ")":
                self.pos += 1
                return Intrinsic(text, name, args)
            raise self.fail(f"unexpected {text[self.pos]!r}")

    def arg(self) -> Arg:
        text = self.text
        if self.pos >= len(text):
            raise self.fail("missing argument")
        c = text[self.pos]
        if c == "'":
            return ("lit", self.string())
        if c == "$":
            return ("path", self.path())
        if text.startswith("States.", self.pos):
            return ("call", self.call())
        end = self.pos
        while end < len(text) and text[end] not in ",) \t\n":
            end += 1
        word = text[self.pos : end]
        self.pos = end
        if word in ("true", "false"):
            return ("lit", word == "true")
        if word == "null":
            return ("lit", None)
        try:
            num: Any = float(word) if any(ch in word for ch in ".eE") else int(word)
        except ValueError:
            raise self.fail(f"bad argument {word!r}") from None
        return ("lit", num)

    def string(self) -> str:
        text = self.text
        self.pos += 1
        out: list[str] = []
        while self.pos < len(text):
            c = text[self.pos]
            if c == "\\" and self.pos + 1 < len(text):
                nxt = text[self.pos + 1]
                # Keep the escape for braces so States.Format can tell a literal brace
                # from a placeholder; other escapes just yield the character.
                out.append("\\" + nxt if nxt in "{}" else nxt)
                self.pos += 2
                continue
            if c == "'":
                self.pos += 1
                return "".join(out)
            out.append(c)
            self.pos += 1
        raise self.fail("unterminated string")

    def path(self) -> JsonPath:
        text = self.text
        start = self.pos
        depth = 0
        quote = ""
        while self.pos < len(text):
            c = text[self.pos]
            if quote:
                if c == quote:
                    quote = ""
            elif c in "'\"" and depth:
                quote = c
            elif c in "[(":
                depth += 1
            elif c in "])":
                if depth == 0:
                    break
                depth -= 1
            elif c in ", \t\n" and depth == 0:
                break
            self.pos += 1
        try:
            return compile_path(text[start : self.pos])
        except ValueError as exc:
            raise self.fail(str(exc)) from None


# ---------------------------------------------------------------------------- functions


def _fail(message: str) -> StatesError:
    return StatesError(INTRINSIC_FAILURE, message)


def _java_str(v: Any, top: bool = True) -> str:
    """Render like Java's toString, which is what AWS's States.Format does."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if type(v) is str:
        return v
    if type(v) is float:
        if v.is_integer() and abs(v) < 1e7:
            return f"{v:.1f}"
        return repr(v)
    if type(v) is int:
        return str(v)
    if type(v) is list:
        return "[" + ", ".join(_java_str(x, False) for x in v) + "]"
    if type(v) is dict:
        return "{" + ", ".join(f"{k}={_java_str(x, False)}" for k, x in v.items()) + "}"
    return str(v)


def _arity(name: str, args: list[Any], lo: int, hi: int | None = None) -> None:
    hi = lo if hi is None else hi
    if not lo <= len(args) <= hi:
        expected = str(lo) if lo == hi else f"{lo} to {hi}"
        raise _fail(f"Function {name} expects {expected} arguments, got {len(args)}")


# The longest string States.Format may build. Its result is the only one an intrinsic makes
# larger than its arguments (each placeholder repeats a value of up to 256 KiB, so a long
# template could ask for gigabytes); four times the largest state payload AWS accepts, so no
# result a state can pass on is refused.
MAX_FORMAT_LENGTH = 4 * 262_144


def _format(args: list[Any]) -> str:
    if not args or type(args[0]) is not str:
        raise _fail("The first argument of States.Format must be a string template")
    template, values = args[0], args[1:]
    out: list[str] = []
    length = len(template)
    i = used = 0
    while i < len(template):
        c = template[i]
        if c == "\\" and i + 1 < len(template) and template[i + 1] in "{}\\'":
            out.append(template[i + 1])
            i += 2
            continue
        if template.startswith("{}", i):
            if used >= len(values):
                raise _fail("Number of arguments does not match the number of placeholders")
            text = _java_str(values[used])
            length += len(text)
            if length > MAX_FORMAT_LENGTH:
                raise _fail(
                    f"States.Format would build a string longer than {MAX_FORMAT_LENGTH} characters "
                    f"(placeholder {used + 1} of {len(values)})"
                )
            out.append(text)
            used += 1
            i += 2
            continue
        out.append(c)
        i += 1
    if used != len(values):
        raise _fail("Number of arguments does not match the number of placeholders")
    return "".join(out)


def _string_to_json(args: list[Any]) -> Any:
    _arity("States.StringToJson", args, 1)
    if type(args[0]) is not str:
        raise _fail("States.StringToJson expects a string argument")
    if not args[0].strip():
        return None
    try:
        return json.loads(args[0])
    except json.JSONDecodeError as exc:
        raise _fail(f"States.StringToJson could not parse the string: {exc}") from None


def _json_to_string(args: list[Any]) -> str:
    _arity("States.JsonToString", args, 1)
    return json.dumps(args[0], separators=(",", ":"), ensure_ascii=False)


def _int_arg(name: str, v: Any, what: str) -> int:
    if type(v) is int:
        return v
    if type(v) is float and v.is_integer():
        return int(v)
    raise _fail(f"The {what} argument of {name} must be an integer, got {json.dumps(v)}")


def _array_arg(name: str, v: Any) -> list[Any]:
    if type(v) is not list:
        raise _fail(f"The first argument of {name} must be an array, got {json.dumps(v)}")
    return v


def _partition(args: list[Any]) -> list[Any]:
    _arity("States.ArrayPartition", args, 2)
    arr = _array_arg("States.ArrayPartition", args[0])
    size = _int_arg("States.ArrayPartition", args[1], "chunk size")
    if size <= 0:
        raise _fail("The chunk size argument of States.ArrayPartition must be positive")
    return [arr[i : i + size] for i in range(0, len(arr), size)]


def _json_equal(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        if type(a) in (int, float) and type(b) in (int, float):
            return bool(a == b)
        return False
    if type(a) is list:
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is dict:
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    return bool(a == b)


def _contains(args: list[Any]) -> bool:
    _arity("States.ArrayContains", args, 2)
    arr = _array_arg("States.ArrayContains", args[0])
    return any(_json_equal(x, args[1]) for x in arr)


# AWS's limit for States.ArrayRange.
MAX_RANGE_ITEMS = 1000


def _range(args: list[Any]) -> list[int]:
    _arity("States.ArrayRange", args, 3)
    names = ("start", "end", "step")
    start, end, step = (_int_arg("States.ArrayRange", a, w) for a, w in zip(args, names, strict=True))
    if step == 0:
        raise _fail("The step argument of States.ArrayRange must not be zero")
    # Count before building: ArrayRange(1, 100000000, 1) must fail at once, not after
    # allocating the 4 GB it asks for.
    count = max(0, (end - start) // step + 1)
    if count > MAX_RANGE_ITEMS:
        raise _fail(f"States.ArrayRange can return at most {MAX_RANGE_ITEMS} items, these arguments make {count}")
    return list(range(start, end + (1 if step > 0 else -1), step))


def _get_item(args: list[Any]) -> Any:
    _arity("States.ArrayGetItem", args, 2)
    arr = _array_arg("States.ArrayGetItem", args[0])
    idx = _int_arg("States.ArrayGetItem", args[1], "index")
    if not 0 <= idx < len(arr):
        raise _fail(f"Index {idx} is out of bounds for an array of length {len(arr)}")
    return arr[idx]


def _length(args: list[Any]) -> int:
    _arity("States.ArrayLength", args, 1)
    return len(_array_arg("States.ArrayLength", args[0]))


def _unique(args: list[Any]) -> list[Any]:
    _arity("States.ArrayUnique", args, 1)
    # Comparing each item with every kept one took time quadratic in the array: 50,000
    # distinct items from a 256 KiB input meant over a billion comparisons, on the event
    # loop. A hashable key that is equal exactly when _json_equal is makes it one pass.
    seen: set[Any] = set()
    out: list[Any] = []
    for x in _array_arg("States.ArrayUnique", args[0]):
        key = _json_key(x)
        if key not in seen:
            seen.add(key)
            out.append(x)
    return out


def _json_key(v: Any) -> Any:
    """A hashable key, equal for two JSON values exactly when ``_json_equal`` holds.

    Numbers compare by value across int and float (1 == 1.0, as Python's hash agrees);
    booleans are not numbers here, and objects compare without regard to key order.
    """
    t = type(v)
    if t is int or t is float:
        return ("n", v)
    if t is list:
        return ("l", tuple(_json_key(x) for x in v))
    if t is dict:
        return ("d", frozenset((k, _json_key(x)) for k, x in v.items()))
    return (t.__name__, v)


def _b64encode(args: list[Any]) -> str:
    _arity("States.Base64Encode", args, 1)
    if type(args[0]) is not str:
        raise _fail("States.Base64Encode expects a string argument")
    if len(args[0]) > 10000:
        raise _fail("The input to States.Base64Encode must be at most 10000 characters")
    return base64.b64encode(args[0].encode()).decode()


def _b64decode(args: list[Any]) -> str:
    _arity("States.Base64Decode", args, 1)
    if type(args[0]) is not str:
        raise _fail("States.Base64Decode expects a string argument")
    if len(args[0]) > 10000:
        raise _fail("The input to States.Base64Decode must be at most 10000 characters")
    try:
        return base64.b64decode(args[0], validate=True).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise _fail(f"States.Base64Decode could not decode the input: {exc}") from None


_HASHES = {"MD5": "md5", "SHA-1": "sha1", "SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512"}


def _hash(args: list[Any]) -> str:
    _arity("States.Hash", args, 2)
    data, algo = args
    if algo not in _HASHES:
        raise _fail(f"The hash algorithm {json.dumps(algo)} is not supported; use one of " + ", ".join(_HASHES))
    text = data if type(data) is str else json.dumps(data, separators=(",", ":"))
    if len(text) > 10000:
        raise _fail("The input to States.Hash must be at most 10000 characters")
    return hashlib.new(_HASHES[algo], text.encode()).hexdigest()


def _deep_merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        if type(v) is dict and type(out.get(k)) is dict:
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def _json_merge(args: list[Any]) -> dict[str, Any]:
    _arity("States.JsonMerge", args, 3)
    a, b, deep = args
    if type(a) is not dict or type(b) is not dict:
        raise _fail("The first two arguments of States.JsonMerge must be objects")
    if type(deep) is not bool:
        raise _fail("The third argument of States.JsonMerge must be a boolean")
    return _deep_merge(a, b) if deep else {**a, **b}


def _java_round(x: float) -> int:
    # Java's Math.round (half up, toward positive infinity), which AWS uses.
    return math.floor(x + 0.5)


def _num_arg(name: str, v: Any) -> int:
    if type(v) is int:
        return v
    if type(v) is float:
        return _java_round(v)
    raise _fail(f"The arguments of {name} must be numbers, got {json.dumps(v)}")


def _math_random(args: list[Any]) -> int:
    _arity("States.MathRandom", args, 2, 3)
    lo = _num_arg("States.MathRandom", args[0])
    hi = _num_arg("States.MathRandom", args[1])
    if lo >= hi:
        raise _fail("The start of States.MathRandom must be less than its end")
    rng = random.Random(_num_arg("States.MathRandom", args[2])) if len(args) == 3 else random
    return rng.randrange(lo, hi)


def _math_add(args: list[Any]) -> int:
    _arity("States.MathAdd", args, 2)
    return _num_arg("States.MathAdd", args[0]) + _num_arg("States.MathAdd", args[1])


def _string_split(args: list[Any]) -> list[str]:
    _arity("States.StringSplit", args, 2)
    text, delims = args
    if type(text) is not str or type(delims) is not str:
        raise _fail("The arguments of States.StringSplit must be strings")
    if not delims:
        return [text] if text else []
    out: list[str] = []
    cur: list[str] = []
    for c in text:
        if c in delims:
            if cur:
                out.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    if cur:
        out.append("".join(cur))
    return out


def _uuid(args: list[Any]) -> str:
    _arity("States.UUID", args, 0)
    return str(uuid.uuid4())


def _array(args: list[Any]) -> list[Any]:
    return list(args)


_FUNCTIONS: dict[str, Callable[[list[Any]], Any]] = {
    "States.Format": _format,
    "States.StringToJson": _string_to_json,
    "States.JsonToString": _json_to_string,
    "States.Array": _array,
    "States.ArrayPartition": _partition,
    "States.ArrayContains": _contains,
    "States.ArrayRange": _range,
    "States.ArrayGetItem": _get_item,
    "States.ArrayLength": _length,
    "States.ArrayUnique": _unique,
    "States.Base64Encode": _b64encode,
    "States.Base64Decode": _b64decode,
    "States.Hash": _hash,
    "States.JsonMerge": _json_merge,
    "States.MathRandom": _math_random,
    "States.MathAdd": _math_add,
    "States.StringSplit": _string_split,
    "States.UUID": _uuid,
}
