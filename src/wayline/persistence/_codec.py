"""msgspec codecs, built once and reused (encoders and decoders are not free to build)."""

from __future__ import annotations

from typing import Any

import msgspec

from .._errors import PayloadError
from ._records import AnyEvent, InboxMessage, RunRecord

_encoder = msgspec.msgpack.Encoder()
_record_decoder = msgspec.msgpack.Decoder(RunRecord)
_events_decoder = msgspec.msgpack.Decoder(list[AnyEvent])
_any_decoder = msgspec.msgpack.Decoder()
_inbox_decoder = msgspec.msgpack.Decoder(InboxMessage)


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
    return _record_decoder.decode(data)


def decode_events(data: bytes) -> list[AnyEvent]:
    return _events_decoder.decode(data)


def decode_any(data: bytes) -> Any:
    return _any_decoder.decode(data)


def decode_inbox(data: bytes) -> InboxMessage:
    return _inbox_decoder.decode(data)
