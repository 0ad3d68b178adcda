"""Every recorded AWS Step Functions case must give the same status, error, output and cause.

Run ``python -m tests.asl.conformance_report`` (or this module with ``-s``) for the table
of pass counts per category.
"""

from __future__ import annotations

import pytest

from ._conformance import CASES_DIR, load_cases, report, run_case

CASES = load_cases()

# Cases we cannot pass yet, by file name, each with the reason. Marked xfail(strict=True)
# so that fixing one is noticed.
KNOWN_FAILURES: dict[str, str] = {}


def _params() -> list[object]:
    params = []
    for case in CASES:
        marks = []
        reason = KNOWN_FAILURES.get(case["_file"])
        if reason:
            marks.append(pytest.mark.xfail(reason=reason, strict=True))
        params.append(pytest.param(case, id=case["_file"].removesuffix(".json"), marks=marks))
    return params


pytestmark = pytest.mark.skipif(
    not CASES, reason=f"conformance cases not found at {CASES_DIR}"
)


@pytest.mark.parametrize("case", _params())
def test_case(case: dict[str, object]) -> None:
    outcome = run_case(case)  # type: ignore[arg-type]
    expected = case["expected"]
    assert outcome.status_ok, f"expected {expected}, got {outcome.describe()}"
    assert outcome.cause_ok, f"cause differs: expected {expected}, got {outcome.describe()}"


def test_report_per_category(capsys: pytest.CaptureFixture[str]) -> None:
    table = report(CASES)
    with capsys.disabled():
        print("\n" + table)
    assert table.splitlines()[-1].startswith("total") or "not matching" in table
