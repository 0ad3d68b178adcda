"""Old encodings must keep decoding (CONVENTIONS.md): frozen bytes written by earlier code.

The files under fixtures/ were produced once by fixtures/make_fixtures.py and are never
regenerated; the expected values below are spelled out here, independent of that script.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from wayline.persistence import (
    CallbackBeat,
    CallbackCompletion,
    CallbackFailure,
    CallbackWait,
    CancelMessage,
    CancelRequest,
    Custom,
    ErrorInfo,
    RetryWait,
    RunCancelled,
    RunCrashed,
    RunFailed,
    RunResumed,
    RunStarted,
    RunStatus,
    RunSucceeded,
    SignalMessage,
    SignalReceived,
    SignalTimedOut,
    SignalWait,
    StepFailed,
    StepRetrying,
    StepStarted,
    StepSucceeded,
    TimerWait,
    decode_any,
)
from wayline.persistence._codec import decode_events, decode_inbox, decode_record
from wayline.persistence._records import FORMAT

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
    assert rec.waits == (TimerWait(step=2, due=3601.5),)  # was kind "timer", key "sleep:2"
    assert rec.wake_at == 3601.5
    assert rec.trace == {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    assert rec.metadata == {"trigger": "api"}
    assert rec.state == {"cursor": "Wait1"}
    assert rec.cancel is None
    assert rec.format == FORMAT  # decoded into the current format


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


def _inbox(name: str) -> list[object]:
    """The messages of an inbox fixture, each decoded as the store decodes one row."""
    return [decode_inbox(msgspec.msgpack.encode(raw)) for raw in decode_any((FIXTURES / name).read_bytes())]


def test_inbox_messages_v2_decode() -> None:
    assert _inbox("inbox_v2.msgpack") == [
        SignalMessage(name="address_changed", payload={"city": "Hanoi"}, ts=7.5),
        CancelMessage(reason="user asked", ts=7.6),  # the cancel reason was its payload
    ]


_D, _C = "d" * 64, "c" * 64

EXPECTED_WAITS = (
    TimerWait(step=0, due=3610.0),
    RetryWait(step=1, due=25.0, activity="charge"),
    SignalWait(step=2, due=86410.0, signal="verdict"),
    SignalWait(step=3, signal="forever"),
    CallbackWait(step=4, due=70.0, label="send_approval", digests=(_C, _D), deadline=100.0, heartbeat=60.0),
)

EXPECTED_INBOX = [
    SignalMessage(name="verdict", payload="approved", ts=30.0),
    CancelMessage(ts=31.0),
    CallbackCompletion(digest=_D, output={"ok": True}, ts=32.0),
    CallbackFailure(digest=_D, error="Rejected", cause="no budget", ts=33.0),
    CallbackBeat(digest=_C, ts=34.0),
]


def test_format_1_waits_and_an_applied_cancel_decode_as_tagged_unions() -> None:
    # Written by the last release of FORMAT 1: "kind" strings, keys to parse, a cancel in the
    # metadata. Decoded, each wait is its own type and the cancel is a field.
    rec = decode_record((FIXTURES / "run_record_f1_waits.msgpack").read_bytes())
    assert rec.waits == EXPECTED_WAITS
    assert rec.cancel == CancelRequest("user asked", 2)
    assert rec.metadata == {"parent_run_id": "p-1"}
    assert rec.wake_at == 25.0
    assert rec.format == FORMAT


def test_format_1_inbox_messages_of_every_kind_decode() -> None:
    assert _inbox("inbox_f1_callbacks.msgpack") == EXPECTED_INBOX


def test_format_2_records_decode() -> None:
    rec = decode_record((FIXTURES / "run_record_f2.msgpack").read_bytes())
    assert rec.waits == EXPECTED_WAITS
    assert rec.cancel == CancelRequest("user asked", 2)
    assert rec.format == 2
    assert _inbox("inbox_f2.msgpack") == EXPECTED_INBOX
    # tagged under "type": an old decoder, or a new one, never takes one form for the other
    assert [w["type"] for w in decode_any((FIXTURES / "run_record_f2.msgpack").read_bytes())["waits"]] == [
        "timer",
        "retry",
        "signal",
        "signal",
        "callback",
    ]


def test_a_format_1_record_is_written_back_in_the_current_format() -> None:
    rec = decode_record((FIXTURES / "run_record_f1_waits.msgpack").read_bytes())
    again = decode_record(msgspec.msgpack.encode(rec))
    assert again == rec and "cancel" not in again.metadata


def test_data_of_neither_format_is_refused() -> None:
    import pytest

    with pytest.raises(msgspec.ValidationError):
        lunch = {"run_id": "x", "workflow": "w", "waits": [{"kind": "lunch", "key": "k"}]}
        decode_record(msgspec.msgpack.encode(lunch))
    with pytest.raises(msgspec.ValidationError):
        decode_inbox(msgspec.msgpack.encode({"kind": "callback", "name": "d", "payload": {"op": "dance"}}))


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
