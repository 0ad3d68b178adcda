"""A failure with no error name, through the durable runtime: null, as AWS reports it.

A Fail state that sets no ``Error`` ends the execution with ``error: null`` on AWS. The
runtime used to store and report ``""`` there (3 recorded conformance cases failed through it
while the local host passed them); the stored event, the run record, ``rt.describe`` and
``RunFailed`` now keep None, and records written before still decode.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from wayline import RunFailed, StateMachine, open_runtime
from wayline.history import RunFailed as RunFailedEvent
from wayline.persistence import ErrorInfo
from wayline.persistence._codec import decode_events, decode_record
from wayline.testing import VirtualClock

FAIL_EMPTY = {"StartAt": "Stop", "States": {"Stop": {"Type": "Fail"}}}
FAIL_CAUSE = {"StartAt": "Stop", "States": {"Stop": {"Type": "Fail", "Cause": "no reason given"}}}

pytestmark = pytest.mark.anyio


async def test_a_fail_state_without_error_reports_null_everywhere(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    empty = StateMachine(FAIL_EMPTY, name="empty")
    cause = StateMachine(FAIL_CAUSE, name="cause")
    async with open_runtime(db, workflows=[empty, cause], clock=VirtualClock()) as rt:
        with pytest.raises(RunFailed) as failed:
            await (await rt.start(empty, {}, run_id="e")).result()
        assert (failed.value.error, failed.value.cause) == (None, None)
        assert str(failed.value) == "run 'e' failed"
        with pytest.raises(RunFailed) as failed:
            await (await rt.start(cause, {}, run_id="c")).result()
        assert (failed.value.error, failed.value.cause) == (None, "no reason given")
        assert str(failed.value) == "run 'c' failed: no reason given"
    # Read back from the file by a new runtime: the stored record and event say null.
    async with open_runtime(db, workflows=[empty, cause], worker=False) as rt:
        info = await rt.describe("e")
        assert (info.error, info.cause) == (None, None)
        events = [e async for e in rt.history("e") if isinstance(e, RunFailedEvent)]
        assert [(e.error, e.cause) for e in events] == [(None, None)]
        assert (await rt.describe("c")).error is None


def test_records_and_events_stored_with_a_string_error_still_decode() -> None:
    # As earlier releases wrote them (error was a required string, "" for a nameless failure).
    old_record = msgspec.msgpack.encode(
        {"run_id": "r", "workflow": "m", "status": "FAILED", "error": {"error": "", "cause": "x"}, "format": 2}
    )
    assert decode_record(old_record).error == ErrorInfo("", "x")
    old_events = msgspec.msgpack.encode([{"type": "RunFailed", "ts": 1.0, "error": "States.Timeout"}])
    assert decode_events(old_events) == [RunFailedEvent(ts=1.0, error="States.Timeout")]
    # And the new form, with no name, round-trips.
    new = msgspec.msgpack.encode([RunFailedEvent(ts=2.0, error=None, cause="c")])
    assert decode_events(new) == [RunFailedEvent(ts=2.0, error=None, cause="c")]
