"""StringMatches globs: AWS semantics, in time linear in the string."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings, strategies as st

from wayline.runtime.asl._choice import compile_glob


def reference_glob(pattern: str) -> re.Pattern[str]:
    """The States Language rule as a (backtracking) regex: fine for short strings."""
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "*" else re.escape(c))
        i += 1
    return re.compile("".join(out), re.DOTALL)


@settings(max_examples=2000, deadline=None)
@given(st.text("ab*\\\n", max_size=8), st.text("ab*\\\n", max_size=10))
def test_glob_agrees_with_the_rule(pattern: str, text: str) -> None:
    assert compile_glob(pattern)(text) == (reference_glob(pattern).fullmatch(text) is not None)


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("*.log", "app.log", True),
        ("*.log", "app.log.gz", False),
        ("log-*-*.txt", "log-2024-01.txt", True),
        ("a\\*b", "a*b", True),  # an escaped star is a star
        ("a\\*b", "axb", False),
        ("*", "", True),
        ("a**b", "ab", True),
        ("ab*ba", "aba", False),  # the head and the tail may not overlap
        ("x?y", "x?y", True),  # only * is special
        ("trailing\\", "trailing\\", True),
    ],
)
def test_glob_examples(pattern: str, text: str, expected: bool) -> None:
    assert compile_glob(pattern)(text) is expected
