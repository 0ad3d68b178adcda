"""The expression budget: its limits, its errors, and where evaluations run."""

from __future__ import annotations

import threading
import time
from typing import Any

import anyio
import pytest

from wayline.runtime import ExpressionBudget
from wayline.runtime.asl import ExpressionBudgetError, LocalHost, StateMachine, StatesError, execute
from wayline.runtime.asl._jsonata import _thread_limiter, compile_expression

pytestmark = pytest.mark.anyio


def jsonata_pass(output: Any, **kwargs: Any) -> StateMachine:
    return StateMachine(
        {"QueryLanguage": "JSONata", "StartAt": "P", "States": {"P": {"Type": "Pass", "Output": output, "End": True}}},
        **kwargs,
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seconds": 0}, "ExpressionBudget.seconds must be a positive, finite number of seconds, got 0"),
        ({"seconds": float("inf")}, "ExpressionBudget.seconds must be a positive, finite number of seconds, got inf"),
        ({"seconds": "5"}, "ExpressionBudget.seconds must be a positive, finite number of seconds, got '5'"),
        ({"max_depth": 0}, "ExpressionBudget.max_depth must be a positive integer, got 0"),
        ({"max_length": 2.5}, "ExpressionBudget.max_length must be a positive integer, got 2.5"),
    ],
)
async def test_a_budget_with_a_limit_that_is_not_positive_is_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ExpressionBudgetError) as info:
        ExpressionBudget(**kwargs)
    assert str(info.value) == message
    assert info.value.field == next(iter(kwargs))


async def test_a_state_machine_takes_only_an_expression_budget() -> None:
    with pytest.raises(ExpressionBudgetError) as info:
        jsonata_pass("{% 1 %}", expression_budget=5)  # type: ignore[arg-type]
    assert "takes an ExpressionBudget" in str(info.value) and "got int" in str(info.value)


async def test_the_default_size_limit_covers_any_payload_the_machine_accepts() -> None:
    assert jsonata_pass("{% 1 %}").expression_budget == ExpressionBudget()
    big = jsonata_pass("{% 1 %}", max_payload_bytes=10_000_000)
    assert big.expression_budget.max_length == 40_000_000
    mine = ExpressionBudget(seconds=1)
    assert jsonata_pass("{% 1 %}", max_payload_bytes=10_000_000, expression_budget=mine).expression_budget is mine


async def test_a_long_string_from_the_input_is_within_the_default_budget() -> None:
    machine = jsonata_pass("{% $length($states.input.s & 'x') %}")
    assert await execute(machine, {"s": "a" * 250_000}, LocalHost(machine)) == 250_001


async def test_a_distributed_map_item_machine_keeps_the_budget() -> None:
    budget = ExpressionBudget(seconds=2, max_depth=50)
    machine = StateMachine(
        {
            "QueryLanguage": "JSONata",
            "StartAt": "M",
            "States": {
                "M": {
                    "Type": "Map",
                    "ItemProcessor": {
                        "ProcessorConfig": {"Mode": "DISTRIBUTED"},
                        "StartAt": "I",
                        "States": {"I": {"Type": "Pass", "End": True}},
                    },
                    "End": True,
                }
            },
        },
        expression_budget=budget,
    )
    assert machine.item_machine(machine.program.states["M"]).expression_budget is budget


@pytest.mark.parametrize("source", ["$__evaluate_entry", "($__evaluate_exit := null; 1)"])
async def test_the_names_of_the_meter_hooks_are_reserved(source: str) -> None:
    with pytest.raises(ValueError, match="reserved"):
        compile_expression("{% " + source + " %}")


@pytest.mark.parametrize("source", ['$eval("1 + 1")', '($e := $eval; $e("1"))'])
async def test_eval_is_not_available(source: str) -> None:
    # Step Functions leaves $eval out; here it could also rebind the meter's hooks.
    with pytest.raises(StatesError) as info:
        await compile_expression("{% " + source + " %}").evaluate({}, "Output", ExpressionBudget())
    assert info.value.error == "States.QueryEvaluationError"
    assert "$eval is not available" in (info.value.cause or "")


async def test_the_depth_limit_holds_inside_array_constructors() -> None:
    # jsonata-python stops calling its hooks for the rest of an environment after an array
    # constructor with two items; the meter must count those nodes all the same.
    source = "{% ([0, 0]; ($f := function($n){ $n = 0 ? 0 : 1 + $f($n - 1) }; $f(100000))) %}"
    with pytest.raises(StatesError) as info:
        await compile_expression(source).evaluate({}, "Output", ExpressionBudget(seconds=2))
    assert "(ExpressionBudget.max_depth;" in (info.value.cause or "")


async def test_a_slow_expression_runs_on_a_worker_thread_then_comes_back_when_fast() -> None:
    threads: list[str] = []

    def record(value: Any) -> Any:
        threads.append(threading.current_thread().name)
        return value

    expr = compile_expression("{% $record($count($states.input.items.($states.input.items))) %}")
    expr._compiled.register_lambda("record", record)
    budget = ExpressionBudget()
    loop_thread = threading.current_thread().name
    # 300 x 300 items: about 100 ms of work, far past the event loop's 2 ms slice.
    big = {"states": {"input": {"items": list(range(300))}}}
    small = {"states": {"input": {"items": [1]}}}
    assert await expr.evaluate(big, "Output", budget) == 90_000
    assert threads[-1] != loop_thread  # the slice ran out: it was evaluated again in a thread
    assert await expr.evaluate(small, "Output", budget) == 1
    assert threads[-1] != loop_thread  # marked slow: straight to the thread
    # It took well under 2 ms there, so it comes back to the event loop (a busy machine can
    # stretch one evaluation past the slice, hence a few tries).
    for _ in range(20):
        assert await expr.evaluate(small, "Output", budget) == 1
        if threads[-1] == loop_thread:
            break
    assert threads[-1] == loop_thread


async def test_cancelling_a_run_stops_its_expression_thread() -> None:
    started = threading.Event()
    stopped = threading.Event()

    def mark(value: Any) -> Any:
        started.set()
        return value

    expr = compile_expression("{% ($loop := function($n){ $loop($n + $mark(1)) }; $loop(0)) %}")
    compiled = expr._compiled
    compiled.register_lambda("mark", mark)
    evaluate = compiled.evaluate

    def evaluate_then_tell(*args: Any) -> Any:
        try:
            return evaluate(*args)
        finally:
            stopped.set()

    compiled.evaluate = evaluate_then_tell
    expr._slow = True  # straight to the worker thread
    async with anyio.create_task_group() as tg:
        tg.start_soon(expr.evaluate, {}, "Output", ExpressionBudget(seconds=60))
        await anyio.to_thread.run_sync(started.wait)
        tg.cancel_scope.cancel()
    # The thread was abandoned by the cancelled task, and stops at its next node rather
    # than spinning until its 60 s budget runs out.
    assert await anyio.to_thread.run_sync(stopped.wait, 10)


@pytest.mark.parametrize("slow", [False, True])
async def test_now_and_millis_answer_the_time_of_the_evaluation(slow: bool) -> None:
    expr = compile_expression("{% [$millis(), $toMillis($now())] %}")
    expr._slow = slow  # on the event loop, or on the worker thread
    # jsonata-python reads the clock of the instance last compiled on the thread (or the
    # first one a worker thread ran): make that one look a day old.
    stale = compile_expression("{% 'compiled a day ago' %}")._compiled
    stale.timestamp -= 86_400_000
    if slow:
        await expr.evaluate({}, "Output", ExpressionBudget())  # the worker thread's first
        jsonata_instance = await anyio.to_thread.run_sync(
            lambda: stale.get_per_thread_instance(), limiter=_thread_limiter()
        )
        jsonata_instance.timestamp -= 86_400_000
    before = time.time() * 1000
    millis, now = await expr.evaluate({}, "Output", ExpressionBudget())
    after = time.time() * 1000
    assert before - 1 <= millis <= after + 1
    assert before - 1000 <= now <= after + 1  # $now() has whole-millisecond ISO text
