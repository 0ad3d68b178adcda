"""msgspec codecs, built once and reused (encoders and decoders are not free to build).

Decoding is where old stored formats are migrated: a snapshot or inbox message that the
current decoder refuses, or a snapshot that says it was written in an older format, goes
through `_legacy` (see there). The common case, current data, costs one decode.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import msgspec

from .._errors import PayloadError
from ._legacy import upgrade_message, upgrade_record
from ._records import FORMAT, AnyEvent, AnyInboxMessage, InboxMessage, RunRecord
from ._secret import ext_hook, store_hook, transient_hook

log = logging.getLogger("wayline.store")

# Two encoders (see `._secret`): the transient one keeps a `Secret` in memory as itself, the
# store's refuses a plaintext one (`Unsealed`) so that nothing writes it unencrypted.
_encoder = msgspec.msgpack.Encoder(enc_hook=transient_hook)
_store_encoder = msgspec.msgpack.Encoder(enc_hook=store_hook)
_record_decoder = msgspec.msgpack.Decoder(RunRecord, ext_hook=ext_hook)
_events_decoder = msgspec.msgpack.Decoder(list[AnyEvent], ext_hook=ext_hook)
_any_decoder = msgspec.msgpack.Decoder(ext_hook=ext_hook)
_inbox_decoder = msgspec.msgpack.Decoder(AnyInboxMessage, ext_hook=ext_hook)

#: What encoding an unstorable value raises: a type msgspec does not know, an int out of
#: range, and RecursionError for a value nested deeper than the interpreter's recursion
#: limit or one that contains itself.
ENCODE_ERRORS = (TypeError, ValueError, OverflowError, RecursionError)


def _why(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return (
            "it is nested too deeply or contains itself (a list or dict that holds itself, directly "
            "or through others); flatten it or break the cycle"
        )
    return str(exc)


def encode(value: Any, *, what: str = "value", run_id: str | None = None) -> bytes:
    """Encode anything storable; unencodable values raise `PayloadError` naming ``what``.

    In memory only: a `Secret` is kept as its plaintext (stores write with `store_encode`)."""
    try:
        return _encoder.encode(value)
    except ENCODE_ERRORS as exc:
        raise PayloadError(what, _why(exc), run_id=run_id) from exc


def encode_stored(value: Any, *, what: str = "value", run_id: str | None = None) -> bytes:
    """`encode` for what a store writes: a plaintext `Secret` raises `Unsealed`."""
    try:
        return _store_encoder.encode(value)
    except ENCODE_ERRORS as exc:
        raise PayloadError(what, _why(exc), run_id=run_id) from exc


def payload_error(exc: BaseException, what: str, run_id: str | None = None) -> PayloadError:
    """The `PayloadError` for one of `ENCODE_ERRORS` raised by `encode_raw`."""
    return PayloadError(what, _why(exc), run_id=run_id)


#: Encode without translating errors (`ENCODE_ERRORS`): for hot paths that build their
#: `PayloadError` (`payload_error`) only when encoding fails.
encode_raw = _encoder.encode

#: What a store writes with: like `encode_raw`, but a plaintext `Secret` raises `Unsealed`
#: (the store seals the record, `Sealer.seal`, and encodes again).
store_encode = _store_encoder.encode


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


#: Inbox rows already reported as undecodable (by where and seq), so each is logged once
#: however often the inbox is read. Bounded: a flood of bad rows cannot grow it for ever.
_reported: set[tuple[str, int]] = set()
_REPORTED_MAX = 10_000


class UnreadableMessage(InboxMessage, frozen=True):
    """An inbox row that cannot be decoded, in place of its message (never stored): the
    poller moves past it (a run never sees one)."""

    reason: str = ""


def decode_inbox_rows(
    rows: Iterable[tuple[int, str, bytes]], where: str, *, placeholders: bool = False
) -> list[tuple[int, str, InboxMessage]]:
    """The inbox rows ``(seq, run_id, data)`` decoded; a row that cannot be decoded (written
    by something other than wayline, or damaged) is set aside: logged once, and skipped, or
    with ``placeholders`` given as an `UnreadableMessage` (so a reader that goes by sequence
    numbers moves past it, however many there are).

    One bad message must not stop the others: the poller that reads these delivers the
    signals and callback answers of every run the process owns.
    """
    out: list[tuple[int, str, InboxMessage]] = []
    for seq, run_id, data in rows:
        try:
            if not isinstance(run_id, str) or not isinstance(data, bytes):
                raise TypeError(f"the row holds a {type(run_id).__name__} run id and {type(data).__name__} data")
            out.append((seq, run_id, decode_inbox(data)))
        except Exception as exc:  # anything a stranger's bytes can make the decoder raise
            if placeholders:
                out.append((seq, str(run_id), UnreadableMessage(reason=f"{type(exc).__name__}: {exc}")))
            key = (where, seq)
            if key not in _reported:
                if len(_reported) >= _REPORTED_MAX:
                    _reported.clear()
                _reported.add(key)
                log.error(
                    "inbox message %s for run %r in %s cannot be read and is set aside (%s: %s); it was not "
                    "written by wayline, or it is damaged. Other messages are delivered; the run ignores it, "
                    "and it is deleted when the run ends",
                    seq,
                    run_id,
                    where,
                    type(exc).__name__,
                    exc,
                )
    return out
