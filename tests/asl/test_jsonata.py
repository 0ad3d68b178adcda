"""JSONata expressions: the fast path for plain references agrees with jsonata-python."""

from __future__ import annotations

from typing import Any

import pytest

from wayline.runtime.asl import ExpressionBudget, StatesError
from wayline.runtime.asl._jsonata import compile_expression

BUDGET = ExpressionBudget()

STATES: dict[str, Any] = {
    "input": {"a": {"b": [1, 2.0]}, "items": [{"id": 1}, {"id": 2}], "n": None, "f": 3.0},
}


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("{% $states.input.a.b %}", [1, 2]),
        ("{% $states.input.items.id %}", [1, 2]),  # maps over the array: jsonata-python
        ("{% $states.input.n %}", None),
        ("{% $states.input.f %}", 3),
        ("{% $v.k %}", "x"),
        ("{% $states.input.a.b[1] + $v.n %}", 7),
        ("{% $partition([1,2,3], 2) %}", [[1, 2], [3]]),
        ("{% $range(0, 10, 5) %}", [0, 5, 10]),
        ("{% $parse('{\"x\": [1]}') %}", {"x": [1]}),
        ("{% $hash('input data', 'MD5') %}", "812f45842bc6d66ee14572ce20db8e86"),
    ],
)
@pytest.mark.anyio
async def test_expressions(expr: str, expected: Any) -> None:
    bindings = {"states": STATES, "v": {"k": "x", "n": 5}}
    assert await compile_expression(expr).evaluate(bindings, "Output", BUDGET) == expected


@pytest.mark.anyio
async def test_undefined_is_a_query_evaluation_error_naming_the_field() -> None:
    for expr in ("{% $states.input.missing %}", "{% $states.input.a.missing + 1 %}"):
        with pytest.raises(StatesError) as info:
            await compile_expression(expr).evaluate({"states": STATES}, "Output/x", BUDGET)
        assert info.value.error == "States.QueryEvaluationError"
        assert "'Output/x'" in (info.value.cause or "")


@pytest.mark.anyio
async def test_runtime_error_carries_the_jsonata_code() -> None:
    with pytest.raises(StatesError) as info:
        await compile_expression("{% $nope(1) %}").evaluate({"states": STATES}, "Output", BUDGET)
    assert (info.value.cause or "").endswith("T1006: Attempted to invoke a non-function")
