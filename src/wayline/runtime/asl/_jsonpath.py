"""The JSONPath subset of the Amazon States Language, compiled once and evaluated fast.

Supported: ``$`` (state input), ``$$`` (context object), ``$name`` (a workflow variable),
``.field``, ``['field']``, ``[n]``, ``[-n]``, ``[*]``, ``.*``, unions ``[a,b]``, slices
``[a:b:c]``, deep scan ``..``, and filters ``[?(@.x == 1 && @.y)]``. As in AWS (which uses
Jayway JSONPath), a *definite* path (fields and indexes only) yields one value or fails,
while an *indefinite* path (wildcards, slices, filters, deep scan) yields a list, possibly
empty.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from ._regex import RegexNotSupported, compile_regex

__all__ = ("JsonPath", "PathNotFound", "compile_path", "is_path", "set_path")

# A field name runs until a character that has a meaning in a path or filter, so names
# with dashes, colons or non-ASCII letters work as they do in Jayway.
_NAME_CHARS = re.compile(r"""[^\s.\[\](),'"=<>!&|*]+""")
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class PathNotFound(Exception):
    """A definite path selected nothing.

    Attributes:
        path: The path in Jayway's canonical bracket form, e.g. ``$['a'][0]``.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(path)


class PathSyntaxError(ValueError):
    """A path string is not valid JSONPath."""


# A step is a small tuple; the first item says what kind:
#   ("f", name)  field        ("i", n) index         ("*",) wildcard
#   ("s", a, b, c) slice      ("d", step) deep scan  ("?", predicate)
#   ("u", keys) union of fields or indexes
Step = tuple[Any, ...]


def is_path(text: str) -> bool:
    """Return whether ``text`` looks like a reference path (starts with ``$``)."""
    return text.startswith("$")


class JsonPath:
    """A compiled JSONPath.

    Attributes:
        text: The source text.
        root: ``"$"`` (input), ``"$$"`` (context object) or ``"var"``.
        var: The variable name when ``root == "var"``.
        definite: Whether the path selects at most one value.
    """

    __slots__ = ("_fields", "definite", "func", "root", "steps", "text", "var")

    def __init__(self, text: str, root: str, var: str | None, steps: list[Step]) -> None:
        self.text = text
        self.root = root
        self.var = var
        func = steps[-1][1] if steps and steps[-1][0] == "fn" else None
        if func is not None:
            steps = steps[:-1]
        self.func: str | None = func
        self.steps = tuple(steps)
        self.definite = all(s[0] in ("f", "i") for s in steps)
        # Most paths are plain field chains; walking them needs no dispatch.
        fields = [s[1] for s in steps if s[0] == "f"]
        self._fields: tuple[str, ...] | None = tuple(fields) if len(fields) == len(steps) else None

    def canonical(self) -> str:
        """Return the path in Jayway's bracket notation, used in AWS error messages."""
        out = "$"
        for step in self.steps:
            kind = step[0]
            if kind == "f":
                out += f"['{step[1]}']"
            elif kind == "i":
                out += f"[{step[1]}]"
            elif kind == "*":
                out += "[*]"
            elif kind == "d":
                out += ".."
            else:
                out += "[...]"
        return out

    def evaluate(self, doc: Any) -> Any:
        """Evaluate against ``doc`` (already resolved from the root).

        Raises:
            PathNotFound: A definite path selected nothing.
        """
        if self.func is not None:
            return _call(self.func, self._walk(doc), self)
        return self._walk(doc)

    def _walk(self, doc: Any) -> Any:
        fields = self._fields
        if fields is not None:
            cur = doc
            for name in fields:
                if type(cur) is dict and name in cur:
                    cur = cur[name]
                else:
                    raise PathNotFound(self.canonical())
            return cur
        if self.definite:
            cur = doc
            for step in self.steps:
                cur = _definite_step(cur, step, self)
            return cur
        nodes = [doc]
        for step in self.steps:
            nodes = _apply(nodes, step)
        return nodes

    def get(self, data: Any, context: Any, lookup: Callable[[str], Any]) -> Any:
        """Resolve the root (input, context or variable) then evaluate.

        Raises:
            PathNotFound: The path (or the variable) does not exist.
        """
        root = self.root
        if root == "$":
            doc = data
        elif root == "$$":
            doc = context
        else:
            try:
                doc = lookup(self.var or "")
            except KeyError:
                raise PathNotFound(self.text) from None
        return self.evaluate(doc)


def _call(name: str, value: Any, path: JsonPath) -> Any:
    if name in ("length", "size"):
        if type(value) in (list, str, dict):
            return len(value)
        raise PathNotFound(path.canonical())
    nums = value if type(value) is list else [value]
    if not nums or not all(type(n) in (int, float) for n in nums):
        raise PathNotFound(path.canonical())
    if name == "min":
        return min(nums)
    if name == "max":
        return max(nums)
    if name == "sum":
        return sum(nums)
    return sum(nums) / len(nums)  # avg


_FUNCTIONS = ("length", "size", "min", "max", "avg", "sum")


def _definite_step(cur: Any, step: Step, path: JsonPath) -> Any:
    if step[0] == "f":
        if type(cur) is dict and step[1] in cur:
            return cur[step[1]]
        raise PathNotFound(path.canonical())
    idx = step[1]
    if type(cur) is list and -len(cur) <= idx < len(cur):
        return cur[idx]
    raise PathNotFound(path.canonical())


def _children(node: Any) -> list[Any]:
    if type(node) is dict:
        return list(node.values())
    if type(node) is list:
        return list(node)
    return []


def _apply(nodes: list[Any], step: Step) -> list[Any]:
    kind = step[0]
    out: list[Any] = []
    if kind == "f":
        name = step[1]
        for n in nodes:
            if type(n) is dict and name in n:
                out.append(n[name])
    elif kind == "i":
        idx = step[1]
        for n in nodes:
            if type(n) is list and -len(n) <= idx < len(n):
                out.append(n[idx])
    elif kind == "*":
        for n in nodes:
            out.extend(_children(n))
    elif kind == "u":
        for n in nodes:
            for key in step[1]:
                if isinstance(key, int):
                    if type(n) is list and -len(n) <= key < len(n):
                        out.append(n[key])
                elif type(n) is dict and key in n:
                    out.append(n[key])
    elif kind == "s":
        for n in nodes:
            if type(n) is list:
                out.extend(n[step[1] : step[2] : step[3]])
    elif kind == "?":
        pred = step[1]
        for n in nodes:
            for child in _children(n):
                if pred(child):
                    out.append(child)
    elif kind == "d":
        sub = step[1]
        for n in nodes:
            out.extend(_apply(_descendants(n), sub))
    return out


def _descendants(node: Any) -> list[Any]:
    """The node and everything below it, depth first in document order (as Jayway scans)."""
    out: list[Any] = []
    stack = [node]
    while stack:
        cur = stack.pop()
        out.append(cur)
        stack.extend(reversed(_children(cur)))
    return out


# ---------------------------------------------------------------------------- parsing

_CACHE: dict[str, JsonPath] = {}


def compile_path(text: str) -> JsonPath:
    """Compile (and cache) a reference path.

    Raises:
        PathSyntaxError: ``text`` is not a valid path.
    """
    cached = _CACHE.get(text)
    if cached is not None:
        return cached
    compiled = _Parser(text).parse()
    if len(_CACHE) < 4096:
        _CACHE[text] = compiled
    return compiled


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, why: str) -> PathSyntaxError:
        return PathSyntaxError(f"invalid JSONPath {self.text!r}: {why} at offset {self.pos}")

    def parse(self) -> JsonPath:
        text = self.text
        if not text.startswith("$"):
            raise self.fail("must start with '$'")
        var: str | None = None
        if text.startswith("$$"):
            root, self.pos = "$$", 2
        else:
            m = _VAR_NAME.match(text, 1)
            if m:
                root, var, self.pos = "var", m.group(0), m.end()
            else:
                root, self.pos = "$", 1
        steps = self.steps(stop="")
        return JsonPath(text, root, var, steps)

    def steps(self, stop: str) -> list[Step]:
        steps: list[Step] = []
        text = self.text
        while self.pos < len(text) and text[self.pos] not in stop:
            c = text[self.pos]
            if text.startswith("..", self.pos):
                self.pos += 2
                if self.pos < len(text) and text[self.pos] == "[":
                    sub = self.bracket()
                elif self.pos < len(text) and text[self.pos] == "*":
                    self.pos += 1
                    sub = ("*",)
                else:
                    sub = ("f", self.name())
                steps.append(("d", sub))
            elif c == ".":
                self.pos += 1
                if self.pos < len(text) and text[self.pos] == "[":
                    # Jayway accepts "$.[0]" and "$.[?(...)]" as "$[0]", "$[?(...)]".
                    steps.append(self.bracket())
                elif self.pos < len(text) and text[self.pos] == "*":
                    self.pos += 1
                    steps.append(("*",))
                else:
                    name = self.name()
                    if text.startswith("()", self.pos) and name in _FUNCTIONS:
                        # Jayway's trailing functions, e.g. $.items.length()
                        self.pos += 2
                        if self.pos != len(text):
                            raise self.fail("a function must end the path")
                        steps.append(("fn", name))
                    else:
                        steps.append(("f", name))
            elif c == "[":
                steps.append(self.bracket())
            else:
                raise self.fail(f"unexpected {c!r}")
        return steps

    def name(self) -> str:
        m = _NAME_CHARS.match(self.text, self.pos)
        if not m:
            raise self.fail("expected a field name")
        self.pos = m.end()
        return m.group(0)

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] == " ":
            self.pos += 1

    def bracket(self) -> Step:
        text = self.text
        self.pos += 1  # '['
        self.skip_ws()
        if self.pos >= len(text):
            raise self.fail("unterminated '['")
        c = text[self.pos]
        if c == "*":
            self.pos += 1
            step: Step = ("*",)
        elif c == "?":
            self.pos += 1
            self.skip_ws()
            if self.pos >= len(text) or text[self.pos] != "(":
                raise self.fail("expected '(' after '?'")
            end = _matching_paren(text, self.pos)
            if end < 0:
                raise self.fail("unterminated filter")
            step = ("?", compile_filter(text[self.pos + 1 : end], self.text))
            self.pos = end + 1
        elif c in "'\"":
            keys: list[Any] = []
            while True:
                keys.append(self.quoted())
                self.skip_ws()
                if self.pos < len(text) and text[self.pos] == ",":
                    self.pos += 1
                    self.skip_ws()
                    continue
                break
            step = ("f", keys[0]) if len(keys) == 1 else ("u", tuple(keys))
        else:
            end = text.find("]", self.pos)
            if end < 0:
                raise self.fail("unterminated '['")
            inner = text[self.pos : end].replace(" ", "")
            self.pos = end
            step = _index_step(inner, self)
        self.skip_ws()
        if self.pos >= len(text) or text[self.pos] != "]":
            raise self.fail("expected ']'")
        self.pos += 1
        return step

    def quoted(self) -> str:
        text = self.text
        quote = text[self.pos]
        self.pos += 1
        out = []
        while self.pos < len(text) and text[self.pos] != quote:
            if text[self.pos] == "\\" and self.pos + 1 < len(text):
                self.pos += 1
            out.append(text[self.pos])
            self.pos += 1
        if self.pos >= len(text):
            raise self.fail("unterminated string")
        self.pos += 1
        return "".join(out)


def _index_step(inner: str, parser: _Parser) -> Step:
    try:
        if ":" in inner:
            parts = inner.split(":")
            if len(parts) > 3:
                raise ValueError
            nums = [int(p) if p else None for p in parts] + [None] * (3 - len(parts))
            return ("s", nums[0], nums[1], nums[2])
        if "," in inner:
            return ("u", tuple(int(p) for p in inner.split(",")))
        return ("i", int(inner))
    except ValueError:
        raise parser.fail(f"bad index {inner!r}") from None


def _matching_paren(text: str, start: int) -> int:
    depth = 0
    quote = ""
    i = start
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


# ---------------------------------------------------------------------------- filters

_TOKEN = re.compile(
    r"\s*(?:(?P<op>==|!=|<=|>=|=~|&&|\|\||[<>!()])"
    r"|(?P<num>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)"
    r"|(?P<str>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")"
    r"|(?P<re>/(?:[^/\\]|\\.)*/[a-z]*)"
    r"|(?P<path>[@$](?:\.\.?[A-Za-z0-9_\-*]+|\[[^\]]*\])*)"
    r"|(?P<word>true|false|null))"
)

_MISSING = object()


def compile_filter(src: str, whole: str) -> Callable[[Any], bool]:
    """Compile a filter expression (the inside of ``[?( ... )]``) into a predicate."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    src = src.strip()
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if not m or m.end() == pos:
            raise PathSyntaxError(f"invalid JSONPath {whole!r}: bad filter {src!r}")
        kind = m.lastgroup or ""
        tokens.append((kind, m.group(kind)))
        pos = m.end()
        while pos < len(src) and src[pos] == " ":
            pos += 1
    parser = _FilterParser(tokens, whole)
    fn = parser.or_expr()
    if parser.i != len(tokens):
        raise PathSyntaxError(f"invalid JSONPath {whole!r}: bad filter {src!r}")
    return lambda node: _truthy(fn(node))


def _truthy(v: Any) -> bool:
    return v is not _MISSING and v is not False and v is not None


class _FilterParser:
    def __init__(self, tokens: list[tuple[str, str]], whole: str) -> None:
        self.tokens = tokens
        self.i = 0
        self.whole = whole

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def or_expr(self) -> Callable[[Any], Any]:
        left = self.and_expr()
        while self.peek() == ("op", "||"):
            self.i += 1
            right = self.and_expr()
            left = (lambda a, b: lambda n: _truthy(a(n)) or _truthy(b(n)))(left, right)
        return left

    def and_expr(self) -> Callable[[Any], Any]:
        left = self.unary()
        while self.peek() == ("op", "&&"):
            self.i += 1
            right = self.unary()
            left = (lambda a, b: lambda n: _truthy(a(n)) and _truthy(b(n)))(left, right)
        return left

    def unary(self) -> Callable[[Any], Any]:
        tok = self.peek()
        if tok == ("op", "!"):
            self.i += 1
            inner = self.unary()
            return lambda n: not _truthy(inner(n))
        if tok == ("op", "("):
            self.i += 1
            inner = self.or_expr()
            if self.peek() != ("op", ")"):
                raise PathSyntaxError(f"invalid JSONPath {self.whole!r}: missing ')'")
            self.i += 1
            return inner
        left = self.operand()
        tok = self.peek()
        if tok and tok[0] == "op" and tok[1] in ("==", "!=", "<", "<=", ">", ">=", "=~"):
            self.i += 1
            op = tok[1]
            if op == "=~":
                rtok = self.peek()
                if not rtok or rtok[0] != "re":
                    raise PathSyntaxError(f"invalid JSONPath {self.whole!r}: expected /regex/")
                self.i += 1
                body, _, flags = rtok[1][1:].rpartition("/")
                try:
                    rx = compile_regex(body, flags)
                except RegexNotSupported as exc:
                    raise PathSyntaxError(f"invalid JSONPath {self.whole!r}: {exc}") from None
                # Jayway (so AWS) matches the whole string, as fullmatch does.
                return lambda n: isinstance(v := left(n), str) and rx.fullmatch(v) is not None
            right = self.operand()
            return lambda n: _compare(op, left(n), right(n))
        return left

    def operand(self) -> Callable[[Any], Any]:
        tok = self.peek()
        if tok is None:
            raise PathSyntaxError(f"invalid JSONPath {self.whole!r}: filter ends early")
        self.i += 1
        kind, text = tok
        if kind == "num":
            num: Any = float(text) if any(c in text for c in ".eE") else int(text)
            return lambda n: num
        if kind == "str":
            s = re.sub(r"\\(.)", r"\1", text[1:-1])
            return lambda n: s
        if kind == "word":
            lit = {"true": True, "false": False, "null": None}[text]
            return lambda n: lit
        if kind == "path":
            sub = compile_path("$" + text[1:]) if text != "@" else None
            if sub is None:
                return lambda n: n

            def get(n: Any, sub: JsonPath = sub) -> Any:
                try:
                    r = sub.evaluate(n)
                except PathNotFound:
                    return _MISSING
                return r

            return get
        raise PathSyntaxError(f"invalid JSONPath {self.whole!r}: unexpected {text!r}")


def _is_num(v: Any) -> bool:
    return type(v) is int or type(v) is float


def _compare(op: str, a: Any, b: Any) -> bool:
    if a is _MISSING or b is _MISSING:
        return op == "!=" and not (a is _MISSING and b is _MISSING)
    if op in ("==", "!="):
        eq = a == b if _is_num(a) and _is_num(b) else type(a) is type(b) and a == b
        return eq if op == "==" else not eq
    if (_is_num(a) and _is_num(b)) or (type(a) is str and type(b) is str):
        if op == "<":
            return bool(a < b)
        if op == "<=":
            return bool(a <= b)
        if op == ">":
            return bool(a > b)
        return bool(a >= b)
    return False


# ---------------------------------------------------------------------------- ResultPath


def set_path(target: Any, path: JsonPath, value: Any) -> Any:
    """Return a copy of ``target`` with ``value`` placed at ``path`` (a ResultPath).

    Only the containers along the path are copied; everything else is shared.

    Raises:
        ValueError: The path crosses a value that is not an object (or a list index out of
            range), which AWS reports as ``States.ResultPathMatchFailure``.
    """
    steps = path.steps
    if not steps:
        return value
    return _set(target, steps, 0, value)


def _set(node: Any, steps: tuple[Step, ...], i: int, value: Any) -> Any:
    step = steps[i]
    last = i == len(steps) - 1
    if step[0] == "f":
        if node is None:
            node = {}
        if type(node) is not dict:
            raise ValueError(step[1])
        new = dict(node)
        new[step[1]] = value if last else _set(node.get(step[1]), steps, i + 1, value)
        return new
    if step[0] == "i":
        if type(node) is not list or not -len(node) <= step[1] < len(node):
            raise ValueError(step[1])
        new_list = list(node)
        new_list[step[1]] = value if last else _set(node[step[1]], steps, i + 1, value)
        return new_list
    raise ValueError("indefinite")


def mapping_or_none(v: Any) -> Mapping[str, Any] | None:
    """Return ``v`` if it is a dict, else None (a tiny helper for callers)."""
    return v if type(v) is dict else None
