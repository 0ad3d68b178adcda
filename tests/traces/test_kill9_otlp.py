"""kill -9 of a traced worker mid-run, then a restart in a new process, both exporting over
real OTLP/HTTP to a local collector: what the collector decodes must be one trace with one
root, no span whose parent it never received, and the crash named."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from _otlp_collector import Collector, running_collector

WORKER = Path(__file__).with_name("kill_worker.py")

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")


def attrs(span: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for a in span.attributes:
        value = a.value
        kind = value.WhichOneof("value")
        out[a.key] = (
            list(v.string_value for v in value.array_value.values) if kind == "array_value" else getattr(value, kind)
        )
    return out


def named(spans: list[Any], name: str) -> list[Any]:
    return [s for s in spans if s.name == name]


def _env() -> dict[str, str]:
    # Export each span within 50 ms of its end, as a production batch delay of seconds would
    # only slower: what the kill cannot take away is what was exported before it.
    return {**os.environ, "OTEL_BSP_SCHEDULE_DELAY": "50", "OTEL_METRIC_EXPORT_INTERVAL": "60000"}


def _kill_mid_run(db: Path, url: str, got: Collector) -> None:
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), str(db), url, "start"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env()
    )
    try:
        assert proc.stdout is not None
        started = [proc.stdout.readline() for _ in range(2)]  # blocks until both packs run
        assert started == [b"pack started\n"] * 2, [*started, proc.stderr.read() if proc.stderr else b""]
        # The quick steps' spans and the run's root reach the collector within the batch delay.
        got.wait_until(lambda: len(named(got.spans(), "step tick")) >= 5 and bool(named(got.spans(), "run shipment")))
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_a_killed_run_is_one_rooted_trace_with_the_crash_named(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    with running_collector() as (got, url):
        _kill_mid_run(db, url, got)
        before = {s.span_id for s in got.spans()}
        done = subprocess.run(
            [sys.executable, str(WORKER), str(db), url, "resume"],
            capture_output=True,
            text=True,
            timeout=60,
            env=_env(),
        )
        assert done.returncode == 0, done.stderr
        spans = got.spans()
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"total": 130, "packed": ["A", "B"]}
    ids = {s.span_id for s in spans}
    # One trace, one root, and every span's parent was received: nothing hangs in the air.
    assert len({s.trace_id for s in spans}) == 1
    (root,) = [s for s in spans if not s.parent_span_id]
    assert root.name == "run shipment" and root.span_id in before  # exported before the kill
    assert [s.name for s in spans if s.parent_span_id and s.parent_span_id not in ids] == []
    assert {s.parent_span_id for s in spans if s is not root} == {root.span_id}
    # The killed segment is reported by the one that resumed the run (its process could not
    # end it), from its start to the last checkpoint; the resumed one says why it began.
    (killed,) = named(spans, "execute shipment")
    assert killed.span_id not in before
    assert attrs(killed)["wayline.segment"] == 1 and attrs(killed)["wayline.segment.end"] == "stopped"
    (resumed,) = named(spans, "resume shipment")
    assert attrs(resumed)["wayline.segment"] == 2
    assert attrs(resumed)["wayline.resume_reason"] == "recovered after a process restart"
    assert attrs(resumed)["wayline.status"] == "SUCCEEDED"
    # The crash: from the last checkpoint to the restart, naming both attempts in flight.
    (crash,) = named(spans, "interrupted")
    assert crash.status.code == crash.status.STATUS_CODE_ERROR
    lost = sorted(
        (attrs(e)["wayline.step"], attrs(e)["wayline.step.index"], attrs(e)["wayline.attempt"]) for e in crash.events
    )
    assert lost == [("pack", 5, 1), ("pack", 6, 1)]
    assert attrs(crash)["wayline.interrupted.steps"] == ["pack", "pack"]
    last_tick = max(named(spans, "step tick")[:5], key=lambda s: s.end_time_unix_nano)
    assert crash.start_time_unix_nano >= last_tick.end_time_unix_nano  # it begins at the last checkpoint
    assert crash.end_time_unix_nano <= resumed.start_time_unix_nano + 1_000
    assert killed.start_time_unix_nano <= root.end_time_unix_nano + 10_000_000  # started with the run
    assert killed.end_time_unix_nano == crash.start_time_unix_nano  # alive until the last checkpoint
    # The re-executions continue the attempt count and say what they are.
    packs = sorted(named(spans, "step pack"), key=lambda s: attrs(s)["wayline.step.index"])
    assert [
        (attrs(s)["wayline.step.index"], attrs(s)["wayline.attempt"], attrs(s).get("wayline.reexecution"))
        for s in packs
    ] == [
        (5, 2, True),
        (6, 2, True),
    ]
    ticks = sorted(attrs(s)["wayline.step.index"] for s in named(spans, "step tick"))
    assert ticks == [0, 1, 2, 3, 4, 7]  # each position once: the quick steps ran once
