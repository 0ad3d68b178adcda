"""Every recorded AWS Step Functions case must give the same status, error, output and cause,
on the interpreter's local host and through the durable runtime alike.

Run ``python -m tests.asl.conformance_report`` (or this module with ``-s``) for the table
of pass counts per category, per host.
"""

from __future__ import annotations

import pytest

from ._conformance import CASES_DIR, HOSTS, Host, load_cases, report, run_case

CASES = load_cases()
if not CASES:
    # One line for the whole module, not a parametrized test with no parameters: a clone
    # outside our workspace has no shared/ folder next to it.
    pytest.skip(
        f"AWS Step Functions conformance cases not found: expected at {CASES_DIR} "
        "(the shared/ folder next to this repository's clone)",
        allow_module_level=True,
    )

# Cases we cannot pass yet, by (host, file name), each with the reason. Marked
# xfail(strict=True) so that fixing one is noticed.
KNOWN_FAILURES: dict[tuple[Host, str], str] = {}


def _params() -> list[object]:
    params = []
    for host in HOSTS:
        for case in CASES:
            marks = []
            reason = KNOWN_FAILURES.get((host, case["_file"]))
            if reason:
                marks.append(pytest.mark.xfail(reason=reason, strict=True))
            params.append(pytest.param(host, case, id=f"{host}-{case['_file'].removesuffix('.json')}", marks=marks))
    return params


@pytest.mark.parametrize(("host", "case"), _params())
def test_case(host: Host, case: dict[str, object]) -> None:
    outcome = run_case(case, host)  # type: ignore[arg-type]
    expected = case["expected"]
    assert outcome.status_ok, f"expected {expected}, got {outcome.describe()}"
    assert outcome.cause_ok, f"cause differs: expected {expected}, got {outcome.describe()}"


@pytest.mark.parametrize("host", HOSTS)
def test_report_per_category(host: Host, capsys: pytest.CaptureFixture[str]) -> None:
    table = report(CASES, host)
    with capsys.disabled():
        print("\n" + table)
    assert table.splitlines()[-1].startswith("total") or "not matching" in table
