"""The runnable example of secrets and encryption runs and prints what its comments claim."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "secrets_and_encryption.py"


def test_the_secrets_example_runs() -> None:
    done = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "waiting, vars: {'card': Secret('***')}",
        "rotated to '2026-12': 1 run(s), nothing failed: True",
        "receipt: {'charged': 25.0, 'last4': '1111', 'auth': Secret('***')}",
        "auth revealed: auth-1111-ok",
        "order-2: 99.5",
        "plaintext on disk: False",
    ]
