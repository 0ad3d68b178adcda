"""examples/several_workers.py, run as the README says: two worker processes and a client on
one PostgreSQL database, the runs shared between the workers."""

from __future__ import annotations

import asyncio
import collections
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

from _postgres import admin, require_postgres, url_for

ROOT = Path(__file__).resolve().parents[2]


def test_two_workers_share_the_runs_a_client_starts_in_a_database_it_creates() -> None:
    require_postgres()
    name = f"wayline_example_{uuid.uuid4().hex[:10]}"  # missing: the example creates it
    try:
        done = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "several_workers.py"), url_for(name)],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
            timeout=150,
            check=False,
        )
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"created database {name}"
    assert re.fullmatch(r"workers: worker-1 \(pid \d+\), worker-2 \(pid \d+\)", lines[1])
    ran = [re.fullmatch(r"(parcel-\w+-\d\d) ran on (worker-[12])", line) for line in lines[2:22]]
    assert all(ran), lines
    runs = [m.group(1) for m in ran if m]
    assert len(set(runs)) == 20
    shares = collections.Counter(m.group(2) for m in ran if m)
    assert set(shares) == {"worker-1", "worker-2"}  # max_runs=4: neither can take them all
    assert lines[22:] == [f"runs per worker: worker-1 {shares['worker-1']}, worker-2 {shares['worker-2']}"]
    assert "Traceback" not in done.stderr and "set aside" not in done.stderr, done.stderr
