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

from wayline import RunFailed, RunStatus, StateMachine, open_runtime
from wayline.errors import AslDefinitionError
from wayline.runtime import ExpressionBudget

pytestmark = pytest.mark.anyio

HANG = 60  # seconds: the fixed code answers each of these in milliseconds
LOOP = "{% ($loop := function($n){ $loop($n + 1) }; $loop(0)) %}"  # runs until stopped


def jsonata_pass(expression: str, **kwargs: Any) -> StateMachine:
    return StateMachine(
        {
            "QueryLanguage": "JSONata",
            "StartAt": "Eval",
            "States": {"Eval": {"Type": "Pass", "Output": "{% " + expression + " %}", "End": True}},
        },
        **kwargs,
    )


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


# ---------------------------------------------------------------------- JSONata budgets


@pytest.mark.parametrize(
    ("expression", "limits"),
    [
        # recursion that never ends: too deep long before Python's own limit
        ("($f := function($n){ $n = 0 ? 0 : 1 + $f($n - 1) }; $f(100000))", {"max_depth"}),
        # a loop (tail recursion keeps the stack flat): only the clock stops it
        ("($loop := function($n){ $loop($n + 1) }; $loop(0))", {"seconds"}),
        # a cartesian product of three ranges, 10^9 combinations: the clock or the size of
        # the sequence it builds stops it, whichever comes first on this machine
        ("$count([1..1000].([1..1000].([1..1000])))", {"seconds", "max_length"}),
        # exponential recursion
        ("($fib := function($n){ $n < 2 ? $n : $fib($n - 1) + $fib($n - 2) }; $fib(40))", {"seconds"}),
        # ten million items, refused before they are built
        ("$count([1..10000000])", {"max_length"}),
        ("$length($pad('', 100000000))", {"max_length"}),
    ],
)
async def test_a_runaway_expression_fails_its_state_naming_the_budget(
    tmp_path: Path, expression: str, limits: set[str]
) -> None:
    machine = jsonata_pass(expression, name="runaway", expression_budget=ExpressionBudget(seconds=0.5))
    failed = await failure_of(tmp_path / "r.db", machine, {})
    cause = failed.cause or ""
    assert failed.error == "States.QueryEvaluationError"
    assert "specified for the field 'Output'" in cause
    assert any(f"(ExpressionBudget.{limit};" in cause for limit in limits), cause


async def test_a_budget_failure_is_caught_like_any_state_error(tmp_path: Path) -> None:
    # Pass states have no Catch; a Parallel around the runaway state does.
    branch = {
        "StartAt": "Eval",
        "States": {"Eval": {"Type": "Pass", "Output": LOOP, "End": True}},
    }
    machine = StateMachine(
        {
            "QueryLanguage": "JSONata",
            "StartAt": "Guard",
            "States": {
                "Guard": {
                    "Type": "Parallel",
                    "Branches": [branch],
                    "Catch": [{"ErrorEquals": ["States.QueryEvaluationError"], "Next": "Fallback"}],
                    "End": True,
                },
                "Fallback": {"Type": "Pass", "Output": {"fallback": True}, "End": True},
            },
        },
        name="guarded",
        expression_budget=ExpressionBudget(seconds=0.2),
    )
    assert await run_machine(tmp_path / "c.db", machine, {}) == {"fallback": True}


async def test_a_runaway_expression_does_not_hold_up_other_runs(tmp_path: Path) -> None:
    """While one run evaluates a runaway expression, a run of five 0.1 s sleeps takes about
    as long as it does on an idle runtime (the issue measured 0.61 s for one 0.1 s sleep)."""
    spinning = anyio.Event()

    async def mark(payload: Any) -> Any:
        spinning.set()
        return payload

    async def nap(payload: Any) -> Any:
        await anyio.sleep(0.1)
        return payload

    budget = 3.0
    runaway = StateMachine(
        {
            "QueryLanguage": "JSONata",
            "StartAt": "Mark",
            "States": {
                "Mark": {"Type": "Task", "Resource": "mark", "Next": "Spin"},
                "Spin": {"Type": "Pass", "Output": LOOP, "End": True},
            },
        },
        name="runaway",
        resources={"mark": mark},
        expression_budget=ExpressionBudget(seconds=budget),
    )
    naps = {f"N{i}": {"Type": "Task", "Resource": "nap", "Next": f"N{i + 1}"} for i in range(5)}
    naps["N4"] = {"Type": "Task", "Resource": "nap", "End": True}
    napper = StateMachine({"StartAt": "N0", "States": naps}, name="napper", resources={"nap": nap})

    async with open_runtime(tmp_path / "l.db", workflows=[runaway, napper]) as rt:
        with anyio.fail_after(HANG):
            started = time.perf_counter()
            await (await rt.start(napper, {})).result()
            idle = time.perf_counter() - started

            spinner = await rt.start(runaway, {})
            await spinning.wait()
            started = time.perf_counter()
            await (await rt.start(napper, {})).result()
            loaded = time.perf_counter() - started
            # The runaway run was still evaluating all along.
            assert (await rt.describe(spinner.run_id)).status == RunStatus.RUNNING
            with pytest.raises(RunFailed) as info:
                await spinner.result()
    assert "ExpressionBudget.seconds" in (info.value.cause or "")
    # Evaluated on the event loop, the runaway expression would hold the naps back for the
    # whole budget (3 s); the bound is generous for a busy machine.
    assert loaded < 2 * idle + 1.0, f"five 0.1 s naps: {loaded:.2f} s beside a runaway expression, {idle:.2f} s alone"


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
