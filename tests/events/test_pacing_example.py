"""The runnable example of throttle and debounce runs and prints what its comments claim."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "throttle_and_debounce.py"


def test_the_throttle_and_debounce_example_runs() -> None:
    done = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "throttled: 2 starts per 10 s for key 'acme'",
        "one run for the burst: True",
        "call acme/0 at +0s",
        "call acme/1 at +5s",
        "call acme/2 at +10s",
        "call acme/3 at +15s",
        "reindex readme rev 3 at +40s",
    ]
