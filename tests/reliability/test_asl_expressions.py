"""Expressions on user data cannot freeze the runtime (issue 12, "Bad input").

Each test runs state machines in a durable runtime on a real SQLite file, through the public
API only. Before the fixes, each of these ran for minutes (or, for ArrayRange, allocated
4 GB) on the event loop thread, and every other run stalled with it. The ``fail_after``
guards are hang detectors, far above what the fixed code takes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from wayline import AslDefinitionError, StateMachine, open_runtime

pytestmark = pytest.mark.anyio

HANG = 60  # seconds: the fixed code answers each of these in milliseconds


async def run_machine(db: Path, machine: StateMachine, data: Any) -> Any:
    async with open_runtime(db, workflows=[machine]) as rt:
        with anyio.fail_after(HANG):
            return await (await rt.start(machine, data)).result()


# ---------------------------------------------------------------------- StringMatches


async def test_a_string_matches_glob_answers_at_once_on_a_long_string(tmp_path: Path) -> None:
    # As a regex, "*a*a*...*b" backtracks through every way to place the a's: it never
    # finished on 5,000 characters.
    glob = "*a" * 12 + "*b"
    machine = StateMachine(
        {
            "StartAt": "Check",
            "States": {
                "Check": {
                    "Type": "Choice",
                    "Choices": [{"Variable": "$.s", "StringMatches": glob, "Next": "Matched"}],
                    "Default": "NoMatch",
                },
                "Matched": {"Type": "Pass", "Result": "matched", "End": True},
                "NoMatch": {"Type": "Pass", "Result": "no match", "End": True},
            },
        },
        name="glob",
    )
    assert await run_machine(tmp_path / "g.db", machine, {"s": "a" * 5000}) == "no match"
    assert await run_machine(tmp_path / "g.db", machine, {"s": "a" * 5000 + "b"}) == "matched"


# ---------------------------------------------------------------------- JSONPath =~


async def test_a_filter_regex_runs_in_linear_time(tmp_path: Path) -> None:
    # (a+)+b on "aaa...c" is the classic catastrophic backtracking case for Python's re.
    machine = StateMachine(
        {
            "StartAt": "Pick",
            "States": {
                "Pick": {
                    "Type": "Pass",
                    "Parameters": {"hits.$": "$.items[?(@.s =~ /(a+)+b/)].s"},
                    "End": True,
                }
            },
        },
        name="filter",
    )
    items = [{"s": "a" * 40 + "c"}, {"s": "aaab"}]
    assert await run_machine(tmp_path / "f.db", machine, {"items": items}) == {"hits": ["aaab"]}


def test_a_regex_the_linear_engine_cannot_run_is_refused_with_its_path() -> None:
    definition = {
        "StartAt": "Pick",
        "States": {"Pick": {"Type": "Pass", "Parameters": {"x.$": "$.items[?(@.s =~ /(a)\\1/)]"}, "End": True}},
    }
    with pytest.raises(AslDefinitionError) as info:
        StateMachine(definition)
    [problem] = info.value.problems
    assert problem.startswith("/States/Pick/Parameters/x.$: ")
    assert "/(a)\\1/ cannot be used" in problem and "backreferences" in problem
