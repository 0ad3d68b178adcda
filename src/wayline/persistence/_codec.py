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
