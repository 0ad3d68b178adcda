"""The demo with --otlp-endpoint: both worker processes export to a collector, and the run is
one trace across the SIGKILL."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from _otlp_collector import running_collector


@pytest.mark.timeout(120)
def test_demo_exports_one_trace_across_the_kill(tmp_path: Path) -> None:
    with running_collector() as (got, url):
        got.refuse["/v1/metrics"] = 405  # a trace-only viewer, as many are
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
    printed = re.search(r"trace ([0-9a-f]{32}): the run's one trace", proc.stdout)
    assert printed is not None, proc.stdout[-2000:]
    assert {s.trace_id.hex() for s in spans} == {printed.group(1)}
    sent = re.search(r"the last worker sent (\d+) of its spans", proc.stdout)
    assert sent is not None and 1 <= int(sent.group(1)) < len(spans)  # the killed worker sent the rest
    assert services == {"wayline-demo"}
    # A clean narrative: the collector's refusal of metrics is one line of the summary, and
    # nothing of the exporters' (no worker stderr, no retries, no stack traces).
    assert "stderr]" not in proc.stdout and proc.stderr == ""
    assert "OpenTelemetry" not in proc.stdout and "Failed to export" not in proc.stdout
    (metrics,) = [line for line in proc.stdout.splitlines() if "metrics" in line]
    assert "does not take them (HTTP 405 Method Not Allowed)" in metrics
    assert "runs trace order-1001 --trace-url" in proc.stdout
    # One root, and no span whose parent the collector never got.
    (root,) = [s for s in spans if not s.parent_span_id]
    assert root.name == "run demo-order"
    ids = {s.span_id for s in spans}
    assert [s.name for s in spans if s.parent_span_id and s.parent_span_id not in ids] == []
    # Both segments are there: the killed one, reported by the worker that resumed the run...
    (killed,) = [s for s in spans if s.name == "execute demo-order"]
    assert _attrs(killed)["wayline.segment.end"].string_value == "stopped"
    (resumed,) = [s for s in spans if s.name == "resume demo-order"]
    attrs = _attrs(resumed)
    assert attrs["wayline.segment"].int_value == 2
    assert attrs["wayline.status"].string_value == "SUCCEEDED"
    # ...and the kill itself, naming the two parallel steps it interrupted, which ran again.
    (crash,) = [s for s in spans if s.name == "interrupted"]
    lost = sorted(_attrs(e)["wayline.step"].string_value for e in crash.events)
    assert lost == ["send_confirmation", "update_inventory"]
    again = [s for s in spans if s.name.startswith("step ") and "wayline.reexecution" in _attrs(s)]
    assert sorted(s.name for s in again) == ["step send_confirmation", "step update_inventory"]


def _attrs(span: Any) -> dict[str, Any]:
    return {a.key: a.value for a in span.attributes}


@pytest.mark.timeout(120)
def test_demo_without_a_collector_says_so_once_and_claims_nothing(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port where nothing listens
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    proc = subprocess.run(
        [sys.executable, "-m", "wayline.demo", "--db", str(tmp_path / "demo.db"), "--otlp-endpoint", url, "--json"],
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert doc["status"] == "SUCCEEDED" and doc["killed"] is True
    assert doc["otlp"]["endpoint"] == url and doc["otlp"]["last_worker"] is None
    assert "Connection refused" in doc["otlp"]["unreachable"]
    narration = proc.stderr
    assert narration.count("Connection refused") == 1, narration  # once, not once per retry
    assert f"no collector at {url}" in narration and "the workers export nothing" in narration
    assert "stderr]" not in narration  # no worker complained: none tried to export
    assert "trace " not in narration  # and no trace is claimed
