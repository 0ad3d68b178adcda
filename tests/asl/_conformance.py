"""Load and run the recorded AWS conformance cases (shared by the test and the report).

Each case runs on two hosts: the interpreter's in-memory `LocalHost`, and the durable runtime
(`open_runtime` on an in-memory store, a `VirtualClock` from the same start time), where the
run's checkpoints, history and final record are what report the outcome.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import anyio

from wayline import RunFailed, open_runtime
from wayline.runtime.asl import AslDefinitionError, LocalHost, StateMachine, StatesError
from wayline.testing import VirtualClock

#: Where a case runs: the interpreter alone, or a durable run of the runtime.
Host = Literal["local", "runtime"]
HOSTS: tuple[Host, ...] = ("local", "runtime")

CASES_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "conformance" / "asl" / "cases"
# A fixed virtual start time keeps Wait-until-timestamp cases deterministic.
START_TIME = 1_700_000_000.0


def load_cases() -> list[dict[str, Any]]:
    """Every case file, sorted by name; empty if the folder is absent."""
    if not CASES_DIR.is_dir():
        return []
    cases = []
    for path in sorted(CASES_DIR.glob("*.json")):
        case = json.loads(path.read_text())
        case["_file"] = path.name
        cases.append(case)
    return cases


def same_json(a: Any, b: Any) -> bool:
    """Equality that also compares JSON types (``1`` vs ``1.0``, ``true`` vs ``1``)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@dataclass
class Outcome:
    """What running a case produced, and how it compares."""

    status: str
    output: Any = None
    error: str | None = None
    cause: str | None = None
    status_ok: bool = False  # status, error and output (for successes) match
    cause_ok: bool = False

    def describe(self) -> str:
        if self.status == "SUCCEEDED":
            return f"SUCCEEDED output={json.dumps(self.output)[:500]}"
        return f"{self.status} error={self.error!r} cause={self.cause!r}"


async def _on_local_host(machine: StateMachine, input: Any) -> Any:
    host = LocalHost(machine, start_time=START_TIME)
    with anyio.fail_after(30):
        return await host.execute(machine, input)


async def _in_runtime(machine: StateMachine, input: Any) -> Any:
    async with open_runtime(":memory:", workflows=[machine], clock=VirtualClock(START_TIME)) as rt:
        with anyio.fail_after(30):
            return await (await rt.start(machine, input, run_id="conformance")).result()


def run_case(case: dict[str, Any], host: Host = "local") -> Outcome:
    """Run one case on ``host`` with a virtual clock and compare with the recording."""
    expected = case["expected"]
    try:
        machine = StateMachine(case["definition"], name="conformance")
        output = anyio.run(_on_local_host if host == "local" else _in_runtime, machine, case["input"])
        outcome = Outcome("SUCCEEDED", output=output)
    except StatesError as err:
        outcome = Outcome("FAILED", error=err.error, cause=err.cause)
    except RunFailed as err:
        outcome = Outcome("FAILED", error=err.error, cause=err.cause)
    except AslDefinitionError as err:
        outcome = Outcome("INVALID", error="AslDefinitionError", cause=str(err))
    if outcome.status != expected["status"]:
        return outcome
    if outcome.status == "SUCCEEDED":
        outcome.status_ok = same_json(outcome.output, expected.get("output"))
        outcome.cause_ok = outcome.status_ok
    else:
        outcome.status_ok = outcome.error == expected.get("error")
        outcome.cause_ok = outcome.cause == expected.get("cause")
    return outcome


def report(cases: list[dict[str, Any]] | None = None, host: Host = "local") -> str:
    """Run every case on ``host`` and return the per-category table."""
    cases = load_cases() if cases is None else cases
    table: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    failures = []
    for case in cases:
        outcome = run_case(case, host)
        row = table[case["category"]]
        row[0] += 1
        row[1] += outcome.status_ok
        row[2] += outcome.status_ok and outcome.cause_ok
        if not (outcome.status_ok and outcome.cause_ok):
            failures.append(f"  {case['_file']}: {outcome.describe()[:300]}")
    lines = [f"{host + ' host':<22}", f"{'category':<22}{'cases':>7}{'status+error':>14}{'+cause':>8}"]
    totals = [0, 0, 0]
    for category in sorted(table):
        n, ok, cause = table[category]
        totals = [totals[0] + n, totals[1] + ok, totals[2] + cause]
        lines.append(f"{category:<22}{n:>7}{ok:>14}{cause:>8}")
    lines.append(f"{'total':<22}{totals[0]:>7}{totals[1]:>14}{totals[2]:>8}")
    if failures:
        lines.append("not matching:")
        lines.extend(failures)
    return "\n".join(lines)
