"""The runnable example of expression budgets runs and says what the README says it does."""

from __future__ import annotations

import re

from _support import run_example


def test_the_budget_example_runs() -> None:
    lines = run_example("asl_expression_budget.py", timeout=60)
    assert re.fullmatch(r"five 0\.1 s naps: \d+\.\d\d s alone, \d+\.\d\d s beside a runaway expression", lines[0])
    assert lines[1] == "the runaway run failed with States.QueryEvaluationError:"
    assert "it ran longer than 2 s (ExpressionBudget.seconds;" in lines[2]
