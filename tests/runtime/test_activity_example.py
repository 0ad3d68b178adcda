"""The runnable example of sync activities and per-call options runs and says what the README
says it does."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sync_activities_and_options.py"


def test_the_sync_activities_example_runs() -> None:
    done = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert re.fullmatch(r"running: step 'export-eu', attempt 1, for \d+\.\ds", lines[0]), lines
    assert lines[1:] == [
        "entry: ledger entry for ada, attempt 2",  # a blocking step, retried by its policy
        "export: exported 120.50 (waited up to 5.0s)",  # a Decimal as declared; its own timeout=
        "approved by: grace",  # the signal decoded as the Struct the workflow waits for
    ]
