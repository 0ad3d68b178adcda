"""Structured logs: `RunLogFilter` tags records logged inside activities, `JsonLogFormatter`
writes one JSON object per line, and the CLI's --log-level / --log-format use both."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from wayline import RetryPolicy, RunContext, RunFailed, RunStatus, StoreError, activity, open_runtime, workflow
from wayline.actors import SupervisorSpec
from wayline.persistence import AnyEvent, MemoryStore, RunRecord
from wayline.runtime import JsonLogFormatter, RunLogFilter
from wayline.testing import VirtualClock

from .conftest import Cli

app_log = logging.getLogger("tests.cli.app")


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(self.format(record))


@pytest.fixture
def collected() -> Iterator[_Collect]:
    handler = _Collect()
    handler.addFilter(RunLogFilter())
    handler.setFormatter(JsonLogFormatter())
    app_log.addHandler(handler)
    app_log.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        app_log.removeHandler(handler)


@activity(name="flaky_charge", retry=RetryPolicy(max_attempts=2, interval=0.0))
async def flaky_charge(amount: float) -> float:
    app_log.info("charging %s", amount)
    if len(attempts) == 0:
        attempts.append(1)
        raise ConnectionError("gateway reset")
    return amount


attempts: list[int] = []


@workflow(name="billing")
async def billing(ctx: RunContext, amount: float) -> float:
    app_log.info("outside any activity")
    return await ctx.run(flaky_charge, amount)


@pytest.mark.anyio
async def test_records_inside_an_activity_carry_run_workflow_step_attempt(collected: _Collect) -> None:
    attempts.clear()
    async with open_runtime(":memory:", workflows=[billing]) as rt:
        assert await (await rt.start(billing, 7.5, run_id="bill-1")).result() == 7.5
    inside = [r for r in collected.records if r.getMessage() == "charging 7.5"]
    assert [(r.run_id, r.workflow, r.step, r.attempt) for r in inside] == [  # type: ignore[attr-defined]
        ("bill-1", "billing", "flaky_charge", 1),
        ("bill-1", "billing", "flaky_charge", 2),
    ]
    outside = [r for r in collected.records if r.getMessage() == "outside any activity"]
    assert outside and not any(hasattr(r, "run_id") for r in outside)
    docs = [json.loads(line) for line in collected.lines if "charging" in line]
    assert docs[1]["run_id"] == "bill-1" and docs[1]["attempt"] == 2 and docs[1]["step"] == "flaky_charge"


def test_filter_keeps_values_given_with_extra() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", (), None)
    record.run_id = "given"
    assert RunLogFilter().filter(record) is True
    assert record.run_id == "given" and not hasattr(record, "step")


def test_json_formatter_fields_extras_and_exceptions() -> None:
    try:
        raise KeyError("k")
    except KeyError:
        exc_info = sys.exc_info()
    record = logging.LogRecord("wayline.run", logging.ERROR, __file__, 3, "run %s broke", ("r-9",), exc_info)
    record.run_id = "r-9"
    record.payload = {"when": Path("/tmp")}  # the path is not JSON: written as its repr
    doc = json.loads(JsonLogFormatter().format(record))
    assert list(doc)[:5] == ["ts", "level", "logger", "message", "run_id"]
    assert (doc["level"], doc["logger"], doc["message"]) == ("ERROR", "wayline.run", "run r-9 broke")
    assert doc["ts"].endswith("Z")
    assert doc["payload"] == {"when": repr(Path("/tmp"))}
    assert "KeyError: 'k'" in doc["exception"]
    assert "\n" not in JsonLogFormatter().format(record)


def test_cli_log_format_json_carries_the_run_id(cli: Cli, tmp_path: Path) -> None:
    # `asl run` owns the database and so recovers it; the waiting code-workflow run it cannot
    # resume is logged by the runtime, with its run id.
    (tmp_path / "m.json").write_text('{"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}}')
    res = cli("asl", "run", "m.json", "--log-format", "json")
    assert res.code == 0, res.err
    docs = [json.loads(line) for line in res.err.splitlines() if line.startswith("{")]
    assert [(d["level"], d["logger"], d["run_id"]) for d in docs] == [("ERROR", "wayline", "waiting")]
    assert "needs workflow 'approval'" in docs[0]["message"]
    text = cli("asl", "run", "m.json")
    assert "ERROR wayline: run waiting needs workflow 'approval'" in text.err and "[run_id=waiting]" in text.err
    quiet = cli("asl", "run", "m.json", "--log-level", "critical")
    assert quiet.code == 0 and "needs workflow" not in quiet.err


class _FailingCheckpoints:
    """A store whose checkpoints of a running run always fail, so the run's actor crash-loops."""

    def __init__(self) -> None:
        self.inner = MemoryStore()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def checkpoint(self, record: RunRecord, events: Sequence[AnyEvent], *args: Any) -> Any:
        if record.status is RunStatus.RUNNING and record.steps >= 1:
            raise StoreError("disk full (simulated)")
        return self.inner.checkpoint(record, events, *args)


@pytest.mark.anyio
async def test_wayline_records_about_a_run_carry_its_id() -> None:
    handler = _Collect()
    wayline_log = logging.getLogger("wayline")
    wayline_log.addHandler(handler)
    try:
        spec = SupervisorSpec(intensity=1, period=60.0)
        async with open_runtime(
            _FailingCheckpoints(), workflows=[billing], clock=VirtualClock(), supervisor=spec
        ) as rt:
            attempts.append(1)  # flaky_charge succeeds at once
            with pytest.raises(RunFailed):
                await (await rt.start(billing, 1.0, run_id="loop")).result()
    finally:
        wayline_log.removeHandler(handler)
    messages = [r.getMessage() for r in handler.records]
    assert any("crashed (restart" in m for m in messages) and any("crashed too often" in m for m in messages)
    assert {getattr(r, "run_id", None) for r in handler.records} == {"loop"}
