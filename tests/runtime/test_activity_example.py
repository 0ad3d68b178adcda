"""The runnable example of sync activities and per-call options runs and says what the README
says it does."""

from __future__ import annotations

import re

from _support import run_example


def test_the_sync_activities_example_runs() -> None:
    lines = run_example("sync_activities_and_options.py", timeout=60)
    assert re.fullmatch(r"running: step 'export-eu', attempt 1, for \d+\.\ds", lines[0]), lines
    assert lines[1:] == [
        "entry: ledger entry for ada, attempt 2",  # a blocking step, retried by its policy
        "export: exported 120.50 (waited up to 5.0s)",  # a Decimal as declared; its own timeout=
        "approved by: grace",  # the signal decoded as the Struct the workflow waits for
    ]
