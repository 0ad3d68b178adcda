"""Events as stored: one row per accepted event, the ids that deduplicate them, and the
index of runs waiting for one (``ctx.wait_for_event``).

An event is accepted by one transaction that claims its id (if it has one) and stores it
with ``dispatched`` unset; the runtime then starts the runs it triggers and wakes the runs
waiting for it, and sets ``dispatched``. A crash in between leaves the event undispatched,
and the next runtime to open (or the next beat of a running one) dispatches it again:
starting a run from an event is idempotent on its run id, and a wake-up is only a hint
(the waiting run reads the events table itself), so dispatching twice changes nothing.

A wait is indexed by the event name, the paths its ``match`` looks at (canonical JSON of
the sorted paths) and the values it wants there (canonical JSON, in path order): for an
event, the store lists the path sets waited on for its name, computes the event's values at
each, and finds the waiting runs by index, without loading any run.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import msgspec

from .._errors import EncryptionKeyError, SecretDecryptError
from ._codec import ENCODE_ERRORS, encode_raw, payload_error, store_encode
from ._crypto import Sealer, may_hold_sealed
from ._records import SignalMessage
from ._secret import ext_hook

#: How long an event id is remembered: the same id again within it starts nothing.
DEDUP_WINDOW = 86400.0


class EventRecord(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """An accepted event as stored.

    Attributes:
        seq: its place in the order of acceptance (1, 2, ...), unique in the database.
        name: the event's name (``"order/created"``).
        event_id: its id (the caller's, or one made up at acceptance).
        ts: its timestamp (the caller's, or the acceptance time).
        accepted_at: when it was committed (the runtime's clock).
        data: its payload.
        metadata: entries the runs it starts take over (a correlation id).
        dispatched: its triggers have started their runs and its waiters were woken.
        unreadable: set only by `EventStore.undispatched`: why its data could not be
            decrypted there (a key the reader lacks, a damaged ciphertext), naming the event
            and the key; ``data`` is then as stored (encrypted).
    """

    seq: int
    name: str
    event_id: str
    ts: float
    accepted_at: float
    data: Any = None
    metadata: dict[str, Any] = {}
    dispatched: bool = False
    unreadable: str | None = None


class NewEvent(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """An event to accept (its ``data`` and ``metadata`` already encoded, as ``body``).

    ``settled``: it starts no run (no trigger fires for it), so once the store has woken its
    waiters it is dispatched; a store that wakes them in the accepting transaction stores it
    dispatched then.
    """

    name: str
    event_id: str
    ts: float
    body: bytes  # encode_body(data, metadata)
    settled: bool = False


class Accepted(msgspec.Struct, frozen=True, gc=False):
    """What `EventStore.append` did with one event: its seq, or the seq of the event that
    claimed its id within the dedup window (``duplicate``).

    ``woken``: the runs whose waits the event answers, each with the seq of the wake-up
    committed to its inbox in the same transaction (deliver them); None when the store does
    not do that (the runtime wakes them itself, `EventStore.take_waiters`).
    """

    seq: int
    duplicate: bool = False
    woken: tuple[tuple[str, int], ...] | None = None


#: The signal a run waiting in ``ctx.wait_for_event(name)`` is woken by: ``WAKE + name``,
#: with the event (as `event_payload` makes it) as its payload.
WAKE = "wayline.event:"


def event_payload(seq: int, name: str, event_id: str, ts: float, data: Any, metadata: dict[str, Any]) -> dict[str, Any]:
    """An event as a waiting run receives it (the fields of ``wayline.Event``)."""
    return {"name": name, "data": data, "id": event_id, "ts": ts, "seq": seq, "metadata": metadata}


def wake_message(seq: int, ev: NewEvent, now: float) -> SignalMessage:
    """The inbox message that wakes a run waiting for ``ev``, carrying it."""
    data, metadata = decode_body(ev.body)
    return SignalMessage(
        name=WAKE + ev.name, payload=event_payload(seq, ev.name, ev.event_id, ev.ts, data, metadata), ts=now
    )


_body_decoder = msgspec.msgpack.Decoder(tuple[Any, dict[str, Any]], ext_hook=ext_hook)


def encode_body(data: Any, metadata: Mapping[str, Any], what: str) -> bytes:
    """``(data, metadata)`` in memory (a `Secret` in ``data`` still plaintext: the store seals
    it, `seal_body`); `PayloadError` naming ``what`` if it is not storable."""
    try:
        return encode_raw((data, dict(metadata)))
    except ENCODE_ERRORS as exc:
        raise payload_error(exc, what) from exc


def decode_body(body: bytes) -> tuple[Any, dict[str, Any]]:
    data, metadata = _body_decoder.decode(body)
    return data, metadata


def data_field(name: str, event_id: str) -> str:
    """What an event's encrypted data is bound to (its associated data): the event's name and
    id, so that a ciphertext moved to another event does not open."""
    return f"data of event {name!r} (id {event_id!r})"


def seal_body(sealer: Sealer, ev: NewEvent) -> bytes:
    """``ev``'s body as a store writes it: the Secrets in its data encrypted, or with
    ``encrypt_payloads`` the whole data; the metadata stays as it is (a run it starts takes it
    over as its searchable metadata). The body itself when there is nothing to encrypt.

    Raises:
        EncryptionKeyError: a Secret in the data and no key (nothing is stored).
    """
    data, metadata = decode_body(ev.body)
    sealed = sealer.seal_loose(data, data_field(ev.name, ev.event_id))
    return ev.body if sealed is data else store_encode((sealed, metadata))


def record(
    sealer: Sealer,
    seq: int,
    name: str,
    event_id: str,
    ts: float,
    accepted_at: float,
    body: bytes,
    dispatched: bool,
    *,
    tolerant: bool = False,
) -> EventRecord:
    """A stored event row, its data decrypted (and checked against the event) if it was
    encrypted.

    Raises:
        SecretDecryptError: the data's ciphertext was altered or moved from another event.
        EncryptionKeyError: the data was encrypted whole under a key this runtime lacks.
        Neither with ``tolerant``: the record then has its data as stored, and says why in
        `EventRecord.unreadable`.
    """
    body = bytes(body)
    data, metadata = decode_body(body)
    unreadable = None
    if may_hold_sealed(body):
        try:
            data = sealer.open_loose(data, data_field(name, event_id))
        except (EncryptionKeyError, SecretDecryptError) as exc:
            if not tolerant:
                raise
            unreadable = str(exc)
    return EventRecord(
        seq=seq,
        name=name,
        event_id=event_id,
        ts=ts,
        accepted_at=accepted_at,
        data=data,
        metadata=metadata,
        dispatched=bool(dispatched),
        unreadable=unreadable,
    )


# --- matching --------------------------------------------------------------------------------

_MISSING = object()


def lookup(data: Any, path: str) -> Any:
    """The value at dotted ``path`` in ``data`` (dict keys; list indexes as digits), or a
    marker that matches nothing."""
    value = data
    for part in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(part, _MISSING)
        elif isinstance(value, (list, tuple)) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
        if value is _MISSING:
            return _MISSING
    return value


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def wait_key(match: Mapping[str, Any]) -> tuple[str, str]:
    """The index key of a wait: (its sorted paths, the values it wants there), as JSON."""
    paths = sorted(match)
    return _canonical(paths), _canonical([match[p] for p in paths])


def values_at(data: Any, paths_key: str) -> str | None:
    """The values key an event's ``data`` has at the paths of ``paths_key`` (None when a
    path is missing: no wait on those paths can match it)."""
    values = []
    for path in json.loads(paths_key):
        value = lookup(data, path)
        if value is _MISSING:
            return None
        values.append(value)
    return _canonical(values)


def matches(data: Any, match: Mapping[str, Any]) -> bool:
    """Whether ``data`` has every value of ``match`` at its path."""
    paths_key, values_key = wait_key(match)
    return values_at(data, paths_key) == values_key


@runtime_checkable
class EventStore(Protocol):
    """Where a store keeps events and event waits (``store.events``)."""

    async def append(self, events: Sequence[NewEvent], *, now: float, window: float) -> list[Accepted]:
        """Accept ``events`` in one transaction, in order: an event whose id was claimed
        within ``window`` seconds before ``now`` is not stored (``duplicate``, with the
        earlier seq); the others claim their id and are stored undispatched."""
        ...

    async def get(self, seq: int) -> EventRecord | None: ...

    async def listing(
        self, *, name: str | None = None, after: int = 0, limit: int = 100, newest_first: bool = False
    ) -> list[EventRecord]:
        """Events (of ``name``) with seq above ``after``, in seq order (or newest first)."""
        ...

    async def undispatched(self, limit: int = 100, after: int = 0) -> list[EventRecord]:
        """Events not yet dispatched with seq above ``after``, oldest first; one whose data
        cannot be decrypted here is among them, with `EventRecord.unreadable` set."""
        ...

    async def mark_dispatched(self, seqs: Collection[int]) -> None: ...

    async def find(self, name: str, *, since: float, after: int = 0, limit: int = 100) -> list[EventRecord]:
        """Events of ``name`` accepted at or after ``since`` with seq above ``after``, oldest first."""
        ...

    async def add_wait(self, run_id: str, name: str, paths: str, values: str) -> None:
        """Index a wait of ``run_id`` (idempotent)."""
        ...

    async def remove_wait(self, run_id: str, name: str, paths: str, values: str) -> None: ...

    async def waiters(self, name: str, data: Any) -> list[str]:
        """The runs with a wait indexed for an event ``name`` with ``data``."""
        ...

    async def take_waiters(self, name: str, data: Any) -> list[str]:
        """`waiters`, and their index rows deleted: each wait is answered by one wake-up."""
        ...

    async def remove_waits(self, run_ids: Collection[str]) -> None:
        """Forget every wait of ``run_ids`` (they ended)."""
        ...
