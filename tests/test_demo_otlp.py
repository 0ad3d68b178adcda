"""The demo with --otlp-endpoint: both worker processes export to a collector, and the run is
one trace across the SIGKILL."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from _otlp_collector import running_collector


@pytest.mark.timeout(120)
def test_demo_exports_one_trace_across_the_kill(tmp_path: Path) -> None:
    with running_collector() as (got, url):
        proc = subprocess.run(
            [sys.executable, "-m", "wayline.demo", "--db", str(tmp_path / "demo.db"), "--otlp-endpoint", url],
            capture_output=True,
            text=True,
            timeout=100,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        spans = got.spans()
        services = got.service_names()
    assert "killed with SIGKILL" in proc.stdout
    printed = re.search(r"trace ([0-9a-f]{32}):", proc.stdout)
    assert printed is not None, proc.stdout[-2000:]
    assert {s.trace_id.hex() for s in spans} == {printed.group(1)}
    assert services == {"wayline-demo"}
    (resumed,) = [s for s in spans if s.name.startswith("run ")]  # the killed segment never ended
    attrs = {a.key: a.value for a in resumed.attributes}
    assert attrs["wayline.segment"].int_value == 2
    assert attrs["wayline.status"].string_value == "SUCCEEDED"
    assert len(resumed.links) == 1 and resumed.parent_span_id == resumed.links[0].span_id
    steps = [s for s in spans if s.name.startswith("step ")]
    assert {s.parent_span_id for s in steps if s.parent_span_id != resumed.parent_span_id} == {resumed.span_id}
