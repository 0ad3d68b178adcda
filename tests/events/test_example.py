"""The runnable example of events and flow control runs and prints what its comments claim."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "events_and_flow_control.py"


def test_the_events_example_runs() -> None:
    done = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "duplicate: True ()",
        "a zero total starts 0 runs",
        "QUEUED - a slot: concurrency limit 1 for key 'c1' reached (1 running, 1 queued ahead, priority 0)",
        "o-1: paid 5, shipped o-1",
        "o-3: paid 9, shipped o-3",
        "o-2: paid 7, shipped o-2",
        "shipped in order: ['o-1', 'o-3', 'o-2']",
        "queued now: 0",
    ]
