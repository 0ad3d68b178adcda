"""StringMatches globs and filter regexes: AWS semantics, linear-time engines, precise errors."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from wayline.runtime.asl import AslDefinitionError, LocalHost, StateMachine, execute
from wayline.runtime.asl._choice import compile_glob
from wayline.runtime.asl._jsonpath import compile_path


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


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$.v[?(@.s =~ /AB.*/)].s", ["ABc"]),
        ("$.v[?(@.s =~ /ab.*/i)].s", ["ABc", "abd"]),
        ("$.v[?(@.s =~ /w$\\n^x/m)].s", ["w\nx"]),
        ("$.v[?(@.s =~ /w$\\n^x/)].s", []),
        ("$.v[?(@.s =~ /w.x/s)].s", ["w\nx"]),
        ("$.v[?(@.s =~ /\\d+/)].s", ["42"]),
        ("$.v[?(@.s =~ /a\\/b/)].s", ["a/b"]),
    ],
)
def test_filter_regex_flags_and_escapes(path: str, expected: list[str]) -> None:
    doc = {"v": [{"s": "ABc"}, {"s": "abd"}, {"s": "w\nx"}, {"s": "42"}, {"s": "a/b"}, {"s": 7}]}
    assert compile_path(path).evaluate(doc) == expected


@pytest.mark.parametrize(
    ("regex", "reason"),
    [
        ("/(a)\\1/", "invalid escape sequence"),
        ("/(?=a)a/", "invalid perl operator"),
        ("/[a/", "missing ]"),  # not even a regex: this used to escape as re.error
        ("/a/x", "unknown flag(s) 'x'"),
    ],
)
def test_a_regex_that_cannot_run_is_a_definition_problem(regex: str, reason: str) -> None:
    definition = {
        "StartAt": "P",
        "States": {"P": {"Type": "Pass", "Parameters": {"x.$": f"$.v[?(@.s =~ {regex})]"}, "End": True}},
    }
    with pytest.raises(AslDefinitionError) as info:
        StateMachine(definition)
    [problem] = info.value.problems
    assert problem.startswith("/States/P/Parameters/x.$: invalid JSONPath")
    assert reason in problem and "RE2" in problem


def test_a_jsonata_regex_literal_runs_on_the_same_engine() -> None:
    definition = {
        "QueryLanguage": "JSONata",
        "StartAt": "P",
        "States": {"P": {"Type": "Pass", "Output": "{% $contains($states.input, /(a)\\1/) %}", "End": True}},
    }
    with pytest.raises(AslDefinitionError) as info:
        StateMachine(definition)
    assert "cannot be used: invalid escape sequence" in info.value.problems[0]


@pytest.mark.anyio
async def test_jsonata_regex_functions_on_re2() -> None:
    definition = {
        "QueryLanguage": "JSONata",
        "StartAt": "P",
        "States": {
            "P": {
                "Type": "Pass",
                "Output": {
                    "match": "{% $match($states.input.s, /a(b+)/).groups %}",
                    "replace": "{% $replace('John Smith', /(\\w+)\\s(\\w+)/, '$2, $1') %}",
                    "split": "{% $split('a1b22c', /[0-9]+/) %}",
                    "nocase": "{% $contains('ABC', /b/i) %}",
                    "runaway": "{% $contains($states.input.long, /(a+)+b/) %}",
                },
                "End": True,
            }
        },
    }
    machine = StateMachine(definition)
    out: Any = await execute(machine, {"s": "xabbby", "long": "a" * 5000 + "c"}, LocalHost(machine))
    assert out == {
        "match": ["bbb"],
        "replace": "Smith, John",
        "split": ["a", "b", "c"],
        "nocase": True,
        "runaway": False,
    }
