"""Regular expressions from definitions, run on RE2: matching time linear in the text.

A JSONPath filter (``[?(@.name =~ /pattern/i)]``) and a JSONata regex literal
(``$match($states.input.s, /pattern/)``) run a pattern from the definition over user data.
Python's ``re`` backtracks: ``(a+)+b`` on a few thousand ``a`` characters runs for minutes,
and it holds the GIL while it does, so no budget and no thread can stop it. RE2 runs in time
linear in the text, whatever the pattern. The price is that RE2 has no backreferences and no
lookaround (``\\1``, ``(?=...)``, ``(?<!...)``); a pattern that uses them is reported when the
definition is validated, with the reason, rather than accepted and run without a bound.
"""

from __future__ import annotations

from typing import Any

import re2  # type: ignore[import-untyped]

__all__ = ("RegexNotSupported", "compile_regex", "jsonata_regex_engine")


def _options(case_sensitive: bool) -> Any:
    options = re2.Options()
    # A pattern RE2 cannot parse is reported to the user with the reason; RE2 would also
    # print it on stderr.
    options.log_errors = False
    options.case_sensitive = case_sensitive
    return options


_SENSITIVE = _options(True)
_INSENSITIVE = _options(False)
# JSONPath filter flags as Jayway reads them (i: case-insensitive, m: ^ and $ at line ends,
# s: . matches a newline); RE2 takes the last two as inline flags.
_INLINE = {"m": "m", "s": "s"}


class RegexNotSupported(ValueError):
    """A pattern that RE2 cannot run (invalid, or a feature RE2 leaves out).

    Attributes:
        pattern: The pattern as written in the definition.
        reason: RE2's own explanation, e.g. ``invalid escape sequence: \\1``.
    """

    def __init__(self, pattern: str, reason: str) -> None:
        self.pattern = pattern
        self.reason = reason
        super().__init__(
            f"the regular expression /{pattern}/ cannot be used: {reason}. wayline runs regular "
            "expressions on RE2, whose matching time is linear in the text; it has no "
            "backreferences and no lookahead or lookbehind"
        )


def compile_regex(pattern: str, flags: str = "") -> Any:
    """Compile ``pattern`` with JSONPath filter ``flags`` (any of ``i``, ``m``, ``s``).

    Raises:
        RegexNotSupported: RE2 rejects the pattern, or a flag is not one of ``ims``.
    """
    unknown = sorted(set(flags) - {"i", "m", "s"})
    if unknown:
        raise RegexNotSupported(pattern, f"unknown flag(s) {''.join(unknown)!r} (use i, m or s)")
    inline = "".join(_INLINE[f] for f in sorted(set(flags)) if f in _INLINE)
    source = f"(?{inline}){pattern}" if inline else pattern
    try:
        return re2.compile(source, _INSENSITIVE if "i" in flags else _SENSITIVE)
    except re2.error as exc:
        raise RegexNotSupported(pattern, _reason(exc)) from None


def _reason(exc: Exception) -> str:
    detail = exc.args[0] if exc.args else exc
    if isinstance(detail, bytes):
        return detail.decode("utf-8", "replace")
    return str(detail)


def jsonata_regex_engine(pattern: str, flags: Any) -> Any:
    """jsonata-python's ``regex_engine`` hook: regex literals in JSONata compile on RE2.

    ``flags`` is jsonata-python's ``RegexFlags`` (``case_insensitive``, ``multiline``).
    """
    return compile_regex(pattern, ("i" if flags.case_insensitive else "") + ("m" if flags.multiline else ""))
