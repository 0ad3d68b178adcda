"""The ASL workloads: the shared conformance cases and a 10-state machine."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import benchmarks

from ._common import Skipped

CASES_DIR = Path(benchmarks.__file__).resolve().parents[1].parent / "shared/conformance/asl/cases"


@dataclass(frozen=True)
class Case:
    name: str
    definition: dict[str, Any]
    input: Any
    expected_status: str  # SUCCEEDED or FAILED, as recorded against AWS


def _has_wait(definition: Any) -> bool:
    # Wait states sleep for real on moto; they would measure the clock, not the
    # interpreter, so they leave the rate on every system alike.
    if isinstance(definition, dict):
        if definition.get("Type") == "Wait":
            return True
        return any(_has_wait(v) for v in definition.values())
    if isinstance(definition, list):
        return any(_has_wait(v) for v in definition)
    return False


def load_cases(limit: int, seed: int) -> tuple[list[Case], int]:
    """The cases without Wait states (a seeded sample of ``limit`` if non-zero).

    Returns the cases and how many were left out for having a Wait state.
    """
    if not CASES_DIR.is_dir():
        # As the conformance tests do: a checkout without shared/ beside it skips them.
        raise Skipped(f"no ASL conformance cases at {CASES_DIR} (shared/ beside the checkout)")
    cases: list[Case] = []
    waits = 0
    for path in sorted(CASES_DIR.glob("*.json")):
        doc = json.loads(path.read_text())
        if _has_wait(doc["definition"]):
            waits += 1
            continue
        cases.append(Case(doc["name"], doc["definition"], doc.get("input", {}), doc["expected"]["status"]))
    if limit and limit < len(cases):
        cases = random.Random(seed).sample(cases, limit)
    return cases, waits


def ten_states() -> dict[str, Any]:
    """Ten Pass states that each add to the state: transitions, paths, no I/O."""
    states: dict[str, Any] = {}
    for i in range(10):
        state: dict[str, Any] = {
            "Type": "Pass",
            "Parameters": {"step": i, "input.$": "$.input"},
            "ResultPath": f"$.s{i}",
        }
        if i < 9:
            state["Next"] = f"S{i + 1}"
        else:
            state["End"] = True
        states[f"S{i}"] = state
    return {"Comment": "wayline benchmark: 10 Pass states", "StartAt": "S0", "States": states}
