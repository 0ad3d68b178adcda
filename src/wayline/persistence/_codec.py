"""msgspec codecs, built once and reused (encoders and decoders are not free to build).

Decoding is where old stored formats are migrated: a snapshot or inbox message that the
current decoder refuses, or a snapshot that says it was written in an older format, goes
through `_legacy` (see there). The common case, current data, costs one decode.
"""

from __future__ import annotations

from typing import Any

import msgspec

from .._errors import PayloadError
from ._legacy import upgrade_message, upgrade_record
from ._records import FORMAT, AnyEvent, AnyInboxMessage, InboxMessage, RunRecord

_encoder = msgspec.msgpack.Encoder()
_record_decoder = msgspec.msgpack.Decoder(RunRecord)
_events_decoder = msgspec.msgpack.Decoder(list[AnyEvent])
_any_decoder = msgspec.msgpack.Decoder()
_inbox_decoder = msgspec.msgpack.Decoder(AnyInboxMessage)


def encode(value: Any, *, what: str = "value", run_id: str | None = None) -> bytes:
    """Encode anything storable; unencodable values raise `PayloadError` naming ``what``."""
    try:
        return _encoder.encode(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise PayloadError(what, str(exc), run_id=run_id) from exc


#: Encode without translating errors (TypeError, ValueError, OverflowError): for hot paths
#: that build their `PayloadError` only when encoding fails.
encode_raw = _encoder.encode


def decode_record(data: bytes) -> RunRecord:
    """A stored snapshot, in the current format whatever format it was written in.

    Raises:
        msgspec.DecodeError: ``data`` is not a snapshot.
    """
    try:
        record = _record_decoder.decode(data)
    except msgspec.ValidationError:
        return upgrade_record(data)
    if record.format < FORMAT:
        return upgrade_record(data)
    return record


def decode_events(data: bytes) -> list[AnyEvent]:
    return _events_decoder.decode(data)


def decode_any(data: bytes) -> Any:
    return _any_decoder.decode(data)


def decode_inbox(data: bytes) -> InboxMessage:
    """A stored inbox message, in the current format whatever format it was written in.

    Raises:
        msgspec.DecodeError: ``data`` is not an inbox message.
    """
    try:
        message: InboxMessage = _inbox_decoder.decode(data)
        return message
    except msgspec.ValidationError:
        return upgrade_message(data)


def decode_history(rows: Any) -> list[AnyEvent]:
    """A run's history from the rows of a history read: ``(0, seq, events)`` per history row,
    then ``(1, 0, snapshot)``, whose tail comes last.

    Only rows below the snapshot's ``history_seq`` are the run's history: a run continued as
    new (``ctx.continue_as_new``) starts again from row 0 with a fresh history, and the rows of
    its earlier segment that are not written over yet are left out.
    """
    found: list[tuple[int, bytes]] = []
    record: RunRecord | None = None
    for kind, seq, data in rows:
        if kind == 0:
            found.append((seq, data))
        else:
            record = decode_record(data)
    out: list[AnyEvent] = []
    # A run that never continued keeps every row (a create may write row 0 with seq 0 left).
    limit = record.history_seq if record is not None and record.segment else None
    for seq, data in found:
        if limit is None or seq < limit:
            out.extend(decode_events(data))
    if record is not None:
        out.extend(record.tail)
    return out
