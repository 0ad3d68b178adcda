"""The runnable example of the run context runs and prints what its comments claim."""

from __future__ import annotations

from _support import run_example


def test_the_run_context_example_runs() -> None:
    lines = run_example("run_context.py")
    assert lines == [
        "c1: [('o-0', 'shipped'), ('o-2', 'charged')]",
        "review: ['o-1']",
        "vars: {'amount': 250.0, 'receipt': 'receipt for 250.0'}",
        "k-9: ['audit-of-b-1', 'b-1'] ('nightly',)",
    ]
