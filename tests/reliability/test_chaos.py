"""Chaos: a worker SIGKILLed at random moments, again and again, while another process sends its
runs signals and answers their callbacks. Every run must end with the result an uninterrupted
run gives, and every message the runtime accepted must have reached its run.

Short by default (4 kills, a few seconds). For a long run:
``WAYLINE_CHAOS_KILLS=100 WAYLINE_CHAOS_RUNS=40 pytest tests/reliability/test_chaos.py``;
``WAYLINE_CHAOS_SEED`` replays a given sequence of kill moments (the seed is printed).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import pytest

from durability._procs import Worker

KILLS = int(os.environ.get("WAYLINE_CHAOS_KILLS", "4"))
RUNS = int(os.environ.get("WAYLINE_CHAOS_RUNS", "8"))
SEED = int(os.environ.get("WAYLINE_CHAOS_SEED", str(random.SystemRandom().randrange(1 << 30))))


def expected(i: int, tokens: str) -> tuple[str, Any]:
    """Run ``i``'s id and the output an uninterrupted run of it returns."""
    if i % 2 == 0:
        name = f"code-{i}"
        total = 10 * i + (10 * i + 1) + (10 * i + 2) + sum(x * x for x in (i, i + 1, i + 2))
        return name, {"sum": total, "ping": f"ping-{name}", "approval": {"approved": name}}
    name = f"asl-{i}"
    items = [i, i + 1, i + 2]
    return name, {
        "i": i,
        "tokens": tokens,
        "items": items,
        "first": 10 * i,
        "approval": {"approved": name},
        "squares": [x * x for x in items],
    }


@pytest.mark.timeout(max(120, 15 * KILLS))
def test_runs_survive_sigkill_at_random_moments_with_messages_from_another_process(tmp_path: Path) -> None:
    print(f"chaos: seed {SEED}, {KILLS} kills, {RUNS} runs")
    rng = random.Random(SEED)
    db, tokens = tmp_path / "chaos.db", tmp_path / "tokens.txt"
    args = [str(db), str(tokens), str(RUNS)]
    sender: Worker | None = None
    kills = steps = 0
    outcome: dict[str, Any] | None = None
    # Between two kills, a random number of activity executions: enough work for every run
    # to get through its steps over the kills, and every incarnation gets somewhere first.
    most = max(1, min(12, 6 * RUNS // KILLS))
    try:
        while kills < KILLS and outcome is None:
            worker = Worker("chaos_worker.py", args)
            try:
                worker.expect("STARTED", timeout=60)
                if sender is None:  # the database exists now
                    sender = Worker("chaos_sender.py", args)
                for _ in range(rng.randint(1, most)):
                    seen, rest = worker.expect_any("STEP", "RESULT", timeout=60)
                    if seen == "RESULT":  # the runs all ended before this kill: nothing left to kill
                        outcome = json.loads(rest)
                        break
                    steps += 1
                else:
                    worker.kill9()
                    kills += 1
            finally:
                worker.close()
        if outcome is None:
            worker = Worker("chaos_worker.py", args)
            try:
                outcome = json.loads(worker.expect("RESULT", timeout=90))
            finally:
                worker.close()
        assert sender is not None
        sender.expect("DONE", timeout=30)
    finally:
        if sender is not None:
            sender.close()
    print(f"chaos: {kills} kills landed, after {steps} activity executions in all")
    assert kills == KILLS or (KILLS > 4 and kills >= KILLS // 2), kills  # the short run kills every time
    want = dict(expected(i, str(tokens)) for i in range(RUNS))
    assert outcome["results"] == want
    assert set(outcome["statuses"].values()) == {"SUCCEEDED"}
    # Nothing accepted was lost: each signal and answer the sender saw accepted is in its run.
    accepted = [json.loads(line.split(" ", 1)[1]) for line in sender.seen if line.startswith("ACCEPTED")]
    assert len(accepted) == RUNS + (RUNS + 1) // 2  # one answer per run, one ping per code run
    for message in accepted:
        result = outcome["results"][message["run"]]
        if "signal" in message:
            assert result["ping"] == message["signal"]
        else:
            assert result["approval"] == message["callback"]
