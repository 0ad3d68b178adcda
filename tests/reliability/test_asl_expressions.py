"""Expressions on user data cannot freeze the runtime (issue 12, "Bad input").

Each test runs state machines in a durable runtime on a real SQLite file, through the public
API only. Before the fixes, each of these ran for minutes (or, for ArrayRange, allocated
4 GB) on the event loop thread, and every other run stalled with it. The ``fail_after``
guards are hang detectors, far above what the fixed code takes.
"""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path
from typing import Any

import anyio
import pytest

from wayline import AslDefinitionError, RunFailed, StateMachine, open_runtime

pytestmark = pytest.mark.anyio

HANG = 60  # seconds: the fixed code answers each of these in milliseconds


async def run_machine(db: Path, machine: StateMachine, data: Any) -> Any:
    async with open_runtime(db, workflows=[machine]) as rt:
        started = time.monotonic()
        with anyio.fail_after(HANG):
            try:
                return await (await rt.start(machine, data)).result()
            finally:
                # fail_after only acts at an await: a stall inside one call shows up here.
                assert time.monotonic() - started < HANG, "the run held the event loop for a minute"


async def failure_of(db: Path, machine: StateMachine, data: Any) -> RunFailed:
    with pytest.raises(RunFailed) as info:
        await run_machine(db, machine, data)
    return info.value


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


# ---------------------------------------------------------------------- intrinsics


async def test_array_range_checks_its_size_before_it_allocates(tmp_path: Path) -> None:
    machine = StateMachine(
        {
            "StartAt": "Range",
            "States": {"Range": {"Type": "Pass", "Parameters": {"r.$": "States.ArrayRange(1, $.n, 1)"}, "End": True}},
        },
        name="range",
    )
    tracemalloc.start()
    try:
        failed = await failure_of(tmp_path / "a.db", machine, {"n": 100_000_000})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert failed.error == "States.IntrinsicFailure"
    assert "at most 1000 items" in (failed.cause or "")
    # The whole range would have been about 3.6 GiB of Python objects.
    assert peak < 256 * 2**20, f"{peak / 2**20:.0f} MiB were allocated at the peak"


async def test_array_unique_is_one_pass_over_a_large_array(tmp_path: Path) -> None:
    # 40,000 distinct items (235 KB): comparing each with every kept one was 800 million
    # comparisons, minutes on the event loop.
    machine = StateMachine(
        {
            "StartAt": "Unique",
            "States": {
                "Unique": {
                    "Type": "Pass",
                    "Parameters": {"n.$": "States.ArrayLength(States.ArrayUnique($.items))"},
                    "End": True,
                }
            },
        },
        name="unique",
    )
    items = [*range(40_000), 1, 2.0, 3]
    assert await run_machine(tmp_path / "u.db", machine, {"items": items}) == {"n": 40_000}


async def test_string_to_json_on_deeply_nested_text_is_a_catchable_intrinsic_failure(tmp_path: Path) -> None:
    machine = StateMachine(
        {
            "StartAt": "Parse",
            "States": {
                "Parse": {
                    "Type": "Task",
                    "Resource": "echo",
                    "Parameters": {"v.$": "States.StringToJson($.text)"},
                    "Catch": [{"ErrorEquals": ["States.IntrinsicFailure"], "ResultPath": "$.error", "Next": "Bad"}],
                    "End": True,
                },
                "Bad": {"Type": "Pass", "OutputPath": "$.error.Error", "End": True},
            },
        },
        name="deep",
        resources={"echo": _echo},
    )
    out = await run_machine(tmp_path / "d.db", machine, {"text": "[" * 100_000})
    assert out == "States.IntrinsicFailure"


async def _echo(payload: Any) -> Any:
    return payload


async def test_format_refuses_a_result_past_its_limit_before_building_it(tmp_path: Path) -> None:
    # 100 placeholders each repeating a 100 KB string: 10 MB, from a 100 KB input.
    template = "{}" * 100
    args = ", ".join(["$.s"] * 100)
    formatted = f"States.Format('{template}', {args})"
    machine = StateMachine(
        {
            "StartAt": "Format",
            "States": {
                "Format": {
                    "Type": "Pass",
                    "Parameters": {"n.$": f"States.ArrayLength(States.StringSplit({formatted}, 'x'))"},
                    "End": True,
                }
            },
        },
        name="format",
    )
    failed = await failure_of(tmp_path / "fm.db", machine, {"s": "a" * 100_000})
    assert failed.error == "States.IntrinsicFailure"
    assert "longer than 1048576 characters" in (failed.cause or "")
