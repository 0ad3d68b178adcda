"""Old encodings must keep decoding (CONVENTIONS.md): frozen bytes written by earlier code.

The files under fixtures/ were produced once by fixtures/make_fixtures.py and are never
regenerated; the expected values below are spelled out here, independent of that script.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from wayline.persistence import (
    Custom,
    ErrorInfo,
    InboxMessage,
    RunCancelled,
    RunCrashed,
    RunFailed,
    RunResumed,
    RunStarted,
    RunStatus,
    RunSucceeded,
    SignalReceived,
    SignalTimedOut,
    StepFailed,
    StepRetrying,
    StepStarted,
    StepSucceeded,
    Wait,
    decode_any,
)
from wayline.persistence._codec import decode_events, decode_record

FIXTURES = Path(__file__).parent / "fixtures"

EXPECTED_EVENTS = [
    RunStarted(ts=1.5, workflow="order", version="2", input={"id": "o-1", "amount": 9.5}),
    RunResumed(ts=2.0, reason="recovered after a process restart"),
    StepStarted(ts=2.5, step="charge", index=0, attempt=1),
    StepFailed(ts=3.0, step="charge", index=0, attempt=1, error="ValueError", cause="declined"),
    StepRetrying(ts=3.0, step="charge", index=0, attempt=2, delay=0.5),
    StepSucceeded(ts=4.0, step="charge", index=0, attempt=2, result={"receipt": "r-1", "bytes": b"\x00\xff"}),
    StepFailed(ts=5.0, step="ship", index=1, attempt=3, error="IOError", cause=None, final=True),
    RunCrashed(ts=5.5, error="KeyError", cause="'x'"),
    RunSucceeded(ts=6.0, output=[1, 2, 3]),
    RunFailed(ts=6.0, error="ActivityError", cause="boom"),
    RunCancelled(ts=6.0, reason="user asked"),
    Custom(ts=7.0, name="StateEntered", details={"state": "Pass1"}),
]


def test_events_v1_decode() -> None:
    assert decode_events((FIXTURES / "events_v1.msgpack").read_bytes()) == EXPECTED_EVENTS


def _check_record_v1(data: bytes) -> None:
    rec = decode_record(data)
    assert rec.run_id == "o-1"
    assert (rec.workflow, rec.version, rec.status) == ("order", "2", RunStatus.WAITING)
    assert rec.input == {"id": "o-1", "amount": 9.5}
    assert rec.vars == {"order_id": "o-1", "n": 3, "nested": {"a": [1, None, True]}}
    assert rec.output is None
    assert rec.error == ErrorInfo("ValueError", "declined")
    assert (rec.created_at, rec.updated_at, rec.ended_at) == (1.5, 4.0, None)
    assert (rec.history_seq, rec.steps, rec.inbox_seq) == (3, 2, 7)
    assert rec.waits == (Wait(kind="timer", key="sleep:2", step=2, due=3601.5),)
    assert rec.wake_at == 3601.5
    assert rec.trace == {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    assert rec.metadata == {"trigger": "api"}
    assert rec.state == {"cursor": "Wait1"}
    assert rec.format == 1


def test_run_record_v1_decodes() -> None:
    data = (FIXTURES / "run_record_v1.msgpack").read_bytes()
    assert "tail" not in decode_any(data)  # really the pre-tail layout
    _check_record_v1(data)


def test_run_record_v1_with_tail_decodes() -> None:
    data = (FIXTURES / "run_record_v1_tail.msgpack").read_bytes()
    _check_record_v1(data)
    assert list(decode_record(data).tail) == EXPECTED_EVENTS[:3]


def test_signal_events_v2_decode() -> None:
    assert decode_events((FIXTURES / "events_v2_signals.msgpack").read_bytes()) == [
        SignalReceived(ts=8.0, index=3, name="address_changed", payload={"city": "Hanoi"}),
        SignalTimedOut(ts=9.0, index=4, name="approval"),
    ]


def test_inbox_messages_v2_decode() -> None:
    data = (FIXTURES / "inbox_v2.msgpack").read_bytes()
    assert msgspec.msgpack.decode(data, type=list[InboxMessage]) == [
        InboxMessage(kind="signal", name="address_changed", payload={"city": "Hanoi"}, ts=7.5),
        InboxMessage(kind="cancel", payload="user asked", ts=7.6),
    ]


def test_run_record_v2_without_defaults_decodes() -> None:
    data = (FIXTURES / "run_record_v2.msgpack").read_bytes()
    assert "tail" not in decode_any(data) and "output" not in decode_any(data)  # defaults omitted
    _check_record_v1(data)


def test_fixtures_are_plain_msgpack_data() -> None:
    # no pickle: anything stored decodes with a schema-less msgpack decoder into plain data
    for path in FIXTURES.glob("*.msgpack"):
        assert isinstance(decode_any(path.read_bytes()), (dict, list)), path


def test_stored_snapshots_record_their_format_version(tmp_path: Path) -> None:
    import asyncio
    import sqlite3

    from wayline import RunContext, open_runtime, workflow
    from wayline.persistence._records import FORMAT

    @workflow(name="tiny")
    async def tiny(ctx: RunContext) -> int:
        return 1

    async def run() -> None:
        async with open_runtime(tmp_path / "f.db", workflows=[tiny]) as rt:
            await (await rt.start(tiny, run_id="t")).result()

    asyncio.run(run())
    conn = sqlite3.connect(tmp_path / "f.db")
    try:
        (snapshot,) = conn.execute("SELECT snapshot FROM runs WHERE run_id = 't'").fetchone()
    finally:
        conn.close()
    assert decode_any(snapshot).get("format") == FORMAT
