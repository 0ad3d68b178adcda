"""The benchmark harness works: every scenario yields a number or says why not.

These tests assert behaviour, never speed: the smoke runs (every row of every suite,
peers included, on a handful of items) check that each row produced a figure, or an
explicit "skipped" / "not ready" reason, and that the pure parts (percentiles, ratios,
the table) compute what they claim.
"""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # ``benchmarks`` is a top-level package of the repo, not of src/
    sys.path.insert(0, str(ROOT))

from benchmarks._asl_cases import CASES_DIR  # noqa: E402
from benchmarks._common import latency_metrics, percentile  # noqa: E402
from benchmarks._harness import (  # noqa: E402
    Outcome,
    Progress,
    Scenario,
    attach_ratios,
    format_table,
    run_scenario,
)
from benchmarks._scale import _resumes  # noqa: E402
from benchmarks._suites import SUITES, build  # noqa: E402

ACCEPTED_WITHOUT_NUMBER = {"skipped", "not ready"}


def _scenario(system: str, *, baseline: bool = False, **kw: object) -> Scenario:
    fields: dict[str, object] = {
        "suite": "throughput",
        "system": system,
        "func": "_baseline:throughput",
        "params": {"n": 10, "k": 5},
        "metric": "steps_per_s",
        "unit": "steps/s",
        "higher_is_better": True,
        "group": "10",
        "baseline": baseline,
        "label": "n=10",
    }
    fields.update(kw)
    return Scenario(**fields)  # type: ignore[arg-type]


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0], 99) == 5.0
    assert math.isclose(percentile(list(map(float, range(101))), 99), 99.0)


def test_latency_metrics_are_in_milliseconds() -> None:
    m = latency_metrics([0.001, 0.002, 0.003])
    assert math.isclose(m["p50_ms"], 2.0)
    assert m["samples"] == 3


def test_ratios_divide_by_the_baseline_of_the_same_group() -> None:
    base = Outcome(_scenario("bare", baseline=True), "ok", metrics={"steps_per_s": 1000.0})
    other = Outcome(_scenario("wayline"), "ok", metrics={"steps_per_s": 600.0})
    elsewhere = Outcome(_scenario("dbos", group="99"), "ok", metrics={"steps_per_s": 5.0})
    skipped = Outcome(_scenario("temporal"), "skipped", "temporalio not installed (x)")
    attach_ratios([base, other, elsewhere, skipped])
    assert other.ratio == pytest.approx(0.6)
    assert elsewhere.ratio is None  # no baseline row for its group
    table = format_table([base, other, elsewhere, skipped])
    assert "baseline" in table
    assert "0.6x" in table
    assert "skipped: temporalio not installed" in table


def test_failover_counts_the_victims_runs_from_the_kill_to_their_next_step() -> None:
    victim, survivor = 101, 202
    results = {
        "a": [[victim, 0.0], [victim, 1.0], [survivor, 5.0], [survivor, 6.0]],  # the victim's: on 3.0 s after
        "b": [[survivor, 4.0], [survivor, 4.5]],  # the victim's, no step begun before the kill: 2.0 s
        "c": [[survivor, 0.5], [survivor, 2.5]],  # the survivor's own: on at once, not a failover
        "d": [[victim, 0.2], [victim, 0.4]],  # ended before the kill
    }
    moved, after_kill = _resumes(results, {"a", "b"}, killed_at=2.0)
    assert sorted(moved) == [2.0, 3.0]
    assert sorted(after_kill) == [0.5, 2.0, 3.0]


def test_scale_summary_gives_the_worker_ratios_the_dbos_ratio_and_the_failover_against_the_lease() -> None:
    from benchmarks.__main__ import _targets

    def row(system: str, value: float, **kw: object) -> Outcome:
        scenario = _scenario(system, **{"suite": "scale", "group": "workers", **kw})
        return Outcome(scenario, "ok", metrics={scenario.metric: value})

    outcomes = [
        row("wayline-pg-1w", 1000.0, baseline=True),
        row("wayline-pg-2w", 1500.0),
        row("wayline-pg-4w", 2200.0),
        row("dbos-pg", 5.0),
        row(
            "wayline-pg-failover",
            4.5,
            group="failover-100",
            baseline=True,
            metric="failover_s",
            params={"n": 100, "lease": 3.0},
        ),
    ]
    lines = "\n".join(_targets(outcomes))
    assert "scale: 2 workers / 1 = 1.50 (target >= 1.6): NOT MET" in lines
    assert "scale: 4 workers / 1 = 2.20;" in lines
    assert f"{os.cpu_count()} cores" in lines
    assert "1 worker process / dbos-pg = 200.0x (target >= 100x): met" in lines
    assert "failover, 100 runs: the last of the killed worker's runs resumed 4.50s after the kill" in lines
    assert "(target <= lease + 1s = 4s): NOT MET" in lines


def test_missing_peer_is_skipped_without_starting_a_child() -> None:
    scenario = _scenario("ghost", requires=("wayline_bench_no_such_package",))
    outcome = run_scenario(scenario, 2, 1, Progress(2, io.StringIO()))
    assert outcome.status == "skipped"
    assert outcome.reason == ("wayline_bench_no_such_package not installed (pip install --group bench)")


def test_a_failing_scenario_is_a_row_not_a_crash() -> None:
    scenario = _scenario("broken", func="_baseline:no_such_function")
    outcome = run_scenario(scenario, 1, 1, Progress(1, io.StringIO()))
    assert outcome.status == "error"
    assert "no_such_function" in outcome.reason


def test_every_suite_has_a_baseline_row() -> None:
    for suite in SUITES:
        for size in ("full", "quick", "smoke"):
            rows = build(suite, size)
            groups = {s.group for s in rows}
            baselines = {s.group for s in rows if s.baseline}
            assert groups == baselines, suite


def test_smoke_runs_the_code_of_every_row_that_quick_and_full_run() -> None:
    for suite in SUITES:
        code = {size: {(s.system, s.func) for s in build(suite, size)} for size in ("full", "quick", "smoke")}
        assert code["smoke"] == code["quick"] == code["full"], suite


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("suite", SUITES)
def test_smoke_run_reports_a_number_or_a_reason(suite: str, tmp_path: Path) -> None:
    if suite == "asl" and not CASES_DIR.is_dir():
        pytest.skip(f"the asl suite's baseline runs the shared conformance cases, absent from {CASES_DIR}")
    cmd = [
        sys.executable,
        "-m",
        "benchmarks",
        suite,
        "--smoke",
        "--json",
        "--repeats",
        "1",
        "--results-dir",
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    results = doc["results"]
    assert results, "no scenarios ran"
    problems = []
    for row in results:
        where = f"{row['suite']}/{row['system']}/{row['label']}"
        if row["status"] == "ok":
            if not (isinstance(row["value"], int | float) and math.isfinite(row["value"])):
                problems.append(f"{where}: ok without a number: {row['value']!r}")
        elif row["status"] not in ACCEPTED_WITHOUT_NUMBER or not row["reason"]:
            problems.append(f"{where}: {row['status']}: {row['reason']}")
        if row["baseline"] and row["status"] != "ok":
            problems.append(f"{where}: the baseline itself did not run")
    assert not problems, "\n".join(problems)
    if suite == "throughput":
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            assert "matplotlib not installed" in (doc["meta"]["plot"] or "")
        else:
            assert (tmp_path / "throughput.png").stat().st_size > 0
