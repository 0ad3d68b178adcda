"""The runnable example of the run context runs and prints what its comments claim."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "run_context.py"


def test_the_run_context_example_runs() -> None:
    done = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "c1: [('o-0', 'shipped'), ('o-2', 'charged')]",
        "review: ['o-1']",
        "vars: {'amount': 250.0, 'receipt': 'receipt for 250.0'}",
        "k-9: ['audit-of-b-1', 'b-1'] ('nightly',)",
    ]
