"""The runnable example of expression budgets runs and says what the README says it does."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "asl_expression_budget.py"


def test_the_budget_example_runs() -> None:
    done = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert re.fullmatch(r"five 0\.1 s naps: \d+\.\d\d s alone, \d+\.\d\d s beside a runaway expression", lines[0])
    assert lines[1] == "the runaway run failed with States.QueryEvaluationError:"
    assert "it ran longer than 2 s (ExpressionBudget.seconds;" in lines[2]
