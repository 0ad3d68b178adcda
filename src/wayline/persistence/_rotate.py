"""Key rotation: re-encrypt what a database stores with its runtime's current key.

A store walks its runs in small batches, in run id order: each snapshot and history row that
holds a value encrypted under another key is decrypted (checked against its run and field as
always), encrypted again with the current key, and written back only if the row is still the
one that was read (a compare-and-set on its bytes). A run in flight that checkpointed in the
meantime has written its values with the current key already (every checkpoint seals with
it), so losing that race loses nothing; the run's next checkpoint, or the next rotation, takes
it. Rows that cannot be opened (a key the runtime lacks, a damaged ciphertext) are counted and
left as they were.

Then, the same way (a batch read, then a compare-and-set write of the rows that need it), the
rows stored outside any run's snapshot and history: inbox messages, events' data and
schedules' inputs (`Rows`).

Values offloaded to the blob table (`._blobs`) are rotated with their run's batch, after its
snapshots and history rows: a blob holds a value sealed for one slot of one run (its
associated data names the run and the field), so the slot that refers to it (``vars['k']``,
``input``, ``result of step #3``...) says how to open it and seal it again. A blob keeps its
address: the digest was taken over the encoding first stored and from then on only names the
blob (nothing checks it against the data), so the references in snapshots and history, and
``run_blobs``, stay as they are, and the rewrite is a compare-and-set on the blob's bytes like
the others. Dedup is not lost by it: an encrypted value is never shared between runs (its
associated data binds it to one), and a run that checkpoints the same ciphertext again (its
sealer's cache) finds the blob stored under the same digest, now holding the same value under
the new key. Each batch commits on its own, so a rotation that stops half-way leaves every blob
under either key, readable with both, and running it again finishes the rest.

A blob that no snapshot or history row refers to any more (an earlier value of a variable, or
of an event of the tail sealed again after a restart, kept by its ``run_blobs`` row until the
run is purged) is rotated too, so that nothing stays readable with a retired key. Its field is
written nowhere, so each field of its run (each variable, ``input``, each event's value) is
tried in turn: the associated data opens with the right one only. One whose variable is gone
is left as it is and counted (`KeyRotation.stale_blobs`): nothing reads it, and its run's
purge deletes it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec

from .._errors import EncryptionKeyError, SecretDecryptError
from ._blobs import BLOB_KEY, has_refs, is_blob_ref
from ._codec import decode_any, decode_events, decode_inbox, decode_record, store_encode
from ._crypto import Sealer, event_slot, may_hold_sealed
from ._events import data_field, decode_body
from ._records import AnyEvent, RunRecord
from ._schedules import decode_stored_schedule, input_field
from ._secret import MAGIC, SealedPayload


class KeyRotation(msgspec.Struct, kw_only=True):
    """What one rotation did.

    Attributes:
        key_id: the key everything was re-encrypted with.
        runs: runs looked at.
        snapshots: snapshots re-encrypted.
        history_rows: history rows re-encrypted.
        inbox_messages: inbox messages re-encrypted.
        events: events whose data was re-encrypted.
        schedules: schedules whose input was re-encrypted.
        blobs: large values in the blob table re-encrypted.
        stale_blobs: blobs under another key that nothing refers to any more and whose field
            could not be told (a variable since deleted): left as they were, deleted with
            their run by a purge.
        raced: rows a run's own checkpoint (or a schedule's fire, or a consumed message) wrote
            or deleted meanwhile (what it wrote is under the current key).
        failed: ``(run_id, reason)`` for rows left as they were (the run id empty for an
            event or a schedule, which the reason names).
    """

    key_id: str
    runs: int = 0
    snapshots: int = 0
    history_rows: int = 0
    inbox_messages: int = 0
    events: int = 0
    schedules: int = 0
    blobs: int = 0
    stale_blobs: int = 0
    raced: int = 0
    failed: list[tuple[str, str]] = []


#: ``(after run id, limit)`` -> ``[(run_id, snapshot)]`` in run id order.
ReadRuns = Callable[[str, int], Awaitable[Sequence[tuple[str, bytes]]]]
#: run ids -> ``[(run_id, seq, events)]``.
ReadHistory = Callable[[list[str]], Awaitable[Sequence[tuple[str, int, bytes]]]]
#: ``([(run_id, old, new)], [(run_id, seq, old, new)])`` -> snapshots and history rows
#: written (the rest raced: their row changed since it was read).
Write = Callable[[list[tuple[str, bytes, bytes]], list[tuple[str, int, bytes, bytes]]], Awaitable[tuple[int, int]]]


def _payloads_in(record: RunRecord | None, events: Sequence[AnyEvent]) -> bool:
    values: list[Any] = []
    if record is not None:
        values += [record.input, record.output, record.state, *record.vars.values()]
        events = [*record.tail, *events]
    for event in events:
        values += [getattr(event, f, None) for f in ("result", "input", "output", "payload")]
    return any(isinstance(v, SealedPayload) for v in values)


def _like(sealer: Sealer, encrypted_whole: bool) -> Sealer:
    """A sealer that writes values the way they were stored: a value that was encrypted whole
    stays so, even when the rotating runtime does not use ``encrypt_payloads``."""
    if encrypted_whole and not sealer.payloads:
        return Sealer(sealer.keys, encrypt_payloads=True, strict=True)
    return sealer


def reseal_snapshot(sealer: Sealer, run_id: str, data: bytes) -> bytes | None:
    """The snapshot re-encrypted with the current key; None when nothing needs it."""
    if not may_hold_sealed(data):
        return None
    record = decode_record(data)
    seen: set[str] = set()
    opened = sealer.open_record(record, seen)
    if not seen - {sealer.keys.current}:
        return None
    resealed, _ = _like(sealer, _payloads_in(record, ())).seal(opened, (), cache=False)
    return store_encode(resealed)


def reseal_events(sealer: Sealer, run_id: str, data: bytes) -> bytes | None:
    if not may_hold_sealed(data):
        return None
    events = decode_events(data)
    seen: set[str] = set()
    opened = sealer.open_events(events, run_id, seen)
    if not seen - {sealer.keys.current}:
        return None
    using = _like(sealer, _payloads_in(None, events))
    return store_encode([using.seal_event(e, run_id) for e in opened])


def reseal_message(sealer: Sealer, run_id: str, data: bytes) -> bytes | None:
    """An inbox message re-encrypted with the current key; None when nothing needs it."""
    if not may_hold_sealed(data):
        return None
    message = decode_inbox(data)
    seen: set[str] = set()
    opened = sealer.open_message(message, run_id, seen)
    if not seen - {sealer.keys.current}:
        return None
    whole = any(isinstance(getattr(message, a, None), SealedPayload) for a in ("payload", "output"))
    return store_encode(_like(sealer, whole).seal_message(opened, run_id))


def reseal_event_body(sealer: Sealer, name: str, event_id: str, body: bytes) -> bytes | None:
    """An event's stored body, its data re-encrypted with the current key; None when nothing
    needs it."""
    if not may_hold_sealed(body):
        return None
    data, metadata = decode_body(body)
    field = data_field(name, event_id)
    seen: set[str] = set()
    opened = sealer.open_loose(data, field, seen)
    if not seen - {sealer.keys.current}:
        return None
    return store_encode((_like(sealer, isinstance(data, SealedPayload)).seal_loose(opened, field), metadata))


def reseal_schedule(sealer: Sealer, data: bytes) -> bytes | None:
    """A stored schedule, its input re-encrypted with the current key; None when nothing
    needs it."""
    if not may_hold_sealed(data):
        return None
    record = decode_stored_schedule(data)
    field = input_field(record.schedule_id)
    seen: set[str] = set()
    opened = sealer.open_loose(record.input, field, seen)
    if not seen - {sealer.keys.current}:
        return None
    sealed = _like(sealer, isinstance(record.input, SealedPayload)).seal_loose(opened, field)
    return store_encode(msgspec.structs.replace(record, input=sealed))


def _blob_ref(value: Any) -> str | None:
    return value[BLOB_KEY] if is_blob_ref(value) else None


def _slots(record: RunRecord | None, events: Sequence[AnyEvent]) -> list[tuple[Any, str]]:
    """The values of ``record`` and ``events`` that a store may offload, with their fields."""
    slots: list[tuple[Any, str]] = []
    if record is not None:
        slots += [(record.input, "input"), (record.output, "output"), (record.state, "state")]
        slots += [(v, f"vars[{k!r}]") for k, v in record.vars.items()]
        events = [*record.tail, *events]
    for event in events:
        slot = event_slot(event)
        if slot is not None:
            slots.append((getattr(event, slot[0]), slot[1]))
    return slots


def blob_slots(
    run_id: str, record: RunRecord | None, events: Sequence[AnyEvent], out: dict[str, tuple[str, str]]
) -> None:
    """Add to ``out`` each blob that ``record`` or ``events`` of run ``run_id`` refer to, with
    ``(run_id, field)``: the slot whose value it holds (offloading replaces a slot's value
    whole, after sealing, so a reference is always a slot's value itself)."""
    for value, field in _slots(record, events):
        digest = _blob_ref(value)
        if digest is not None:
            out.setdefault(digest, (run_id, field))


def _fields(snapshot: bytes, history: Sequence[bytes]) -> list[str]:
    """Every field of a stored run (its snapshot and history rows), each once, variables first."""
    try:
        events = [e for data in history for e in decode_events(data)]
        found = _slots(decode_record(snapshot), events)
    except msgspec.DecodeError:
        return []
    return list(dict.fromkeys(field for _, field in found))


def reseal_blob(sealer: Sealer, run_id: str, field: str, data: bytes) -> bytes | None:
    """A blob holding the value of ``field`` of run ``run_id``, re-encrypted with the current
    key; None when nothing needs it."""
    if not may_hold_sealed(data):
        return None
    value = decode_any(data)
    seen: set[str] = set()
    opened = sealer.open_value(value, run_id, field, seen)
    if not seen - {sealer.keys.current}:
        return None
    return store_encode(_like(sealer, isinstance(value, SealedPayload)).seal_value(opened, run_id, field))


def reseal_stale_blob(sealer: Sealer, run_id: str, fields: Sequence[str], data: bytes) -> bytes | None:
    """A blob of run ``run_id`` that nothing refers to, re-encrypted with the current key for
    the first of ``fields`` it opens with; None when nothing needs it.

    Raises:
        LookupError: it opens with none of them.
    """
    current = (sealer.keys.current or "").encode()
    if data.count(MAGIC) == data.count(MAGIC + bytes((len(current),)) + current):
        return None  # every value in it is under the current key already (its field unknown or not)
    for field in fields:
        try:
            return reseal_blob(sealer, run_id, field, data)
        except SecretDecryptError:
            continue
    raise LookupError(run_id)


class BlobTable(msgspec.Struct, frozen=True):
    """A store's blob table, for `rotate`.

    Attributes:
        read: digests -> ``{digest: data}`` of those stored.
        write: ``[(digest, old, new)]`` -> blobs written (compare-and-set on ``old``).
        refs: run ids -> ``[(run_id, digest)]``, their ``run_blobs`` rows.
    """

    read: Callable[[list[str]], Awaitable[dict[str, bytes]]]
    write: Callable[[list[tuple[str, bytes, bytes]]], Awaitable[int]]
    refs: Callable[[list[str]], Awaitable[Sequence[tuple[str, str]]]]


def _wrapped(blobs: BlobTable, wrap: Callable[[Write], Write]) -> BlobTable:
    """``blobs`` with its writes wrapped as a batch's are (a fault-injecting store counts
    them, and crashes at them, like any other write): the blob rows ride as the snapshots."""
    write_blobs = blobs.write

    async def as_batch(rows: list[tuple[str, bytes, bytes]], _: list[tuple[str, int, bytes, bytes]]) -> tuple[int, int]:
        return await write_blobs(rows), 0

    wrapped = wrap(as_batch)

    async def write(changes: list[tuple[str, bytes, bytes]]) -> int:
        return (await wrapped(changes, []))[0]

    return BlobTable(blobs.read, write, blobs.refs)


async def _rotate_blobs(
    sealer: Sealer,
    blobs: BlobTable,
    snapshots: dict[str, bytes],
    history: dict[str, list[bytes]],
    slots: dict[str, tuple[str, str]],
    out: KeyRotation,
) -> None:
    """Rotate the blobs of one batch of runs (``snapshots``, ``history``): those ``slots``
    says their snapshots and history refer to, and the others their ``run_blobs`` rows hold."""
    # The blobs the batch's runs hold that nothing of theirs refers to any more.
    stale: dict[str, str] = {}
    for run_id, digest in await blobs.refs(sorted(snapshots)):
        if digest not in slots:
            stale.setdefault(digest, run_id)
    if not slots and not stale:
        return
    fields: dict[str, list[str]] = {}
    found = await blobs.read(sorted({*slots, *stale}))
    changes: list[tuple[str, bytes, bytes]] = []
    for digest, data in sorted(found.items()):
        data = bytes(data)
        try:
            if digest in slots:
                run_id, field = slots[digest]
                new = reseal_blob(sealer, run_id, field, data)
            else:
                run_id, field = stale[digest], "an earlier value"
                if not may_hold_sealed(data):
                    continue
                if run_id not in fields:
                    fields[run_id] = _fields(snapshots[run_id], history.get(run_id, ()))
                new = reseal_stale_blob(sealer, run_id, fields[run_id], data)
        except LookupError:
            out.stale_blobs += 1
            continue
        except (SecretDecryptError, EncryptionKeyError, msgspec.DecodeError) as exc:
            out.failed.append((run_id, f"blob {digest[:12]} ({field}): {exc}"))
            continue
        if new is not None:
            changes.append((digest, data, new))
    if changes:
        written = await blobs.write(changes)
        out.raced += len(changes) - written
        out.blobs += written


#: One row of `Rows`: its key, its data, (run id or "", what it is), and its data re-encrypted.
LooseRow = tuple[Any, bytes, tuple[str, str], Callable[[Sealer], bytes | None]]


class Rows(msgspec.Struct, frozen=True):
    """A table of rows kept outside the runs' snapshots and history, for `rotate`.

    Attributes:
        counter: the `KeyRotation` attribute that counts the rows rotated.
        read: ``(after key, limit)`` -> ``[(key, data, (run_id, what), reseal)]`` in key
            order, where ``reseal(sealer)`` is the row's data re-encrypted (or None), and
            ``run_id`` (or "") and ``what`` name the row in `KeyRotation.failed`.
        write: ``[(key, old, new)]`` -> rows written (compare-and-set on ``old``).
        start: a key before the first.
    """

    counter: str
    read: Callable[[Any, int], Awaitable[Sequence[LooseRow]]]
    write: Callable[[list[tuple[Any, bytes, bytes]]], Awaitable[int]]
    start: Any


#: ``(sql, params)`` -> rows read.
ReadSQL = Callable[[str, Sequence[Any]], Awaitable[Sequence[Any]]]
#: ``(sql, [params...])`` -> rows changed, the statement run once per params in one transaction.
WriteSQL = Callable[[str, list[tuple[Any, ...]]], Awaitable[int]]


def loose_rows(read: ReadSQL, write: WriteSQL, *, schema: str = "", mark: Callable[[int], str]) -> list[Rows]:
    """The inbox, events and schedules tables as `Rows`, in a store's SQL (``schema`` the
    tables' prefix, ``mark(i)`` its i-th parameter marker)."""
    m1, m2, m3 = mark(1), mark(2), mark(3)
    counter_table = {"inbox_messages": "inbox", "events": "events", "schedules": "schedules"}

    def table(
        counter: str, select: str, key: str, column: str, start: Any, row: Callable[[Any], tuple[Any, ...]]
    ) -> Rows:
        sql = f"{select} FROM {schema}{counter_table[counter]} WHERE {key} > {m1} ORDER BY {key} LIMIT {m2}"
        update = f"UPDATE {schema}{counter_table[counter]} SET {column} = {m1} WHERE {key} = {m2} AND {column} = {m3}"

        async def read_rows(after: Any, limit: int) -> list[LooseRow]:
            return [row(r) for r in await read(sql, (after, limit))]

        async def write_rows(changes: list[tuple[Any, bytes, bytes]]) -> int:
            return await write(update, [(new, key, old) for key, old, new in changes])

        return Rows(counter, read_rows, write_rows, start)

    def inbox(r: Any) -> LooseRow:
        seq, run_id, data = r[0], r[1], bytes(r[2])
        return seq, data, (run_id, f"inbox message {seq}"), lambda s: reseal_message(s, run_id, data)

    def event(r: Any) -> LooseRow:
        seq, name, event_id, body = r[0], r[1], r[2], bytes(r[3])
        return (
            seq,
            body,
            ("", f"event {seq} ({name!r}, id {event_id!r})"),
            lambda s: reseal_event_body(s, name, event_id, body),
        )

    def schedule(r: Any) -> LooseRow:
        schedule_id, data = r[0], bytes(r[1])
        return schedule_id, data, ("", f"schedule {schedule_id!r}"), lambda s: reseal_schedule(s, data)

    return [
        table("inbox_messages", "SELECT seq, run_id, message", "seq", "message", 0, inbox),
        table("events", "SELECT seq, name, event_id, body", "seq", "body", 0, event),
        table("schedules", "SELECT schedule_id, record", "schedule_id", "record", "", schedule),
    ]


async def _rotate_rows(
    sealer: Sealer,
    rows: Rows,
    out: KeyRotation,
    batch_size: int,
    progress: Callable[[KeyRotation], Any] | None,
) -> None:
    after = rows.start
    while True:
        batch = await rows.read(after, batch_size)
        if not batch:
            return
        after = batch[-1][0]
        changes: list[tuple[Any, bytes, bytes]] = []
        for key, data, (run_id, what), reseal in batch:
            try:
                new = reseal(sealer)
            except (SecretDecryptError, EncryptionKeyError, msgspec.DecodeError) as exc:
                out.failed.append((run_id, f"{what}: {exc}"))
                continue
            if new is not None:
                changes.append((key, data, new))
        if changes:
            written = await rows.write(changes)
            out.raced += len(changes) - written
            setattr(out, rows.counter, getattr(out, rows.counter) + written)
            if progress is not None:
                progress(out)


async def rotate(
    sealer: Sealer,
    read_runs: ReadRuns,
    read_history: ReadHistory,
    write: Write,
    *,
    batch_size: int = 100,
    progress: Callable[[KeyRotation], Any] | None = None,
    wrap: Callable[[Write], Write] | None = None,
    rows: Sequence[Rows] = (),
    blobs: BlobTable | None = None,
) -> KeyRotation:
    """Re-encrypt every stored run with ``sealer``'s current key, ``batch_size`` runs a batch
    (one read and one short write transaction each, so checkpoints go on in between), with
    the blobs the batch's runs refer to (``blobs``: a store that offloads large values).
    ``wrap`` wraps each batch's write (`wayline.testing.FaultInjectingStore` counts them)."""
    if wrap is not None:
        write = wrap(write)
        if blobs is not None:
            blobs = _wrapped(blobs, wrap)
    current = sealer.keys.current
    if current is None:
        raise EncryptionKeyError(
            "rotating keys needs the new key: open the runtime with encryption_key=... (the new one) and the "
            "old keys in encryption_keys=..."
        )
    # Strict: a secret under a key this runtime lacks is reported (failed), not written back.
    sealer = Sealer(sealer.keys, encrypt_payloads=sealer.payloads, strict=True)
    out = KeyRotation(key_id=current)
    after = ""
    while True:
        found = await read_runs(after, batch_size)
        if not found:
            break
        after = found[-1][0]
        out.runs += len(found)
        slots: dict[str, tuple[str, str]] = {}
        history: dict[str, list[bytes]] = {}
        snaps: list[tuple[str, bytes, bytes]] = []
        for run_id, data in found:
            if blobs is not None and has_refs(data):
                _collect(run_id, data, None, slots)
            try:
                new = reseal_snapshot(sealer, run_id, data)
            except (SecretDecryptError, EncryptionKeyError, msgspec.DecodeError) as exc:
                out.failed.append((run_id, str(exc)))
                continue
            if new is not None:
                snaps.append((run_id, data, new))
        hist: list[tuple[str, int, bytes, bytes]] = []
        for run_id, seq, data in await read_history([r for r, _ in found]):
            history.setdefault(run_id, []).append(data)
            if blobs is not None and has_refs(data):
                _collect(run_id, data, seq, slots)
            try:
                new = reseal_events(sealer, run_id, data)
            except (SecretDecryptError, EncryptionKeyError, msgspec.DecodeError) as exc:
                out.failed.append((run_id, f"history row {seq}: {exc}"))
                continue
            if new is not None:
                hist.append((run_id, seq, data, new))
        if snaps or hist:
            n_snaps, n_hist = await write(snaps, hist)
            out.raced += len(snaps) - n_snaps + len(hist) - n_hist
            out.snapshots += n_snaps
            out.history_rows += n_hist
        if blobs is not None:
            await _rotate_blobs(sealer, blobs, dict(found), history, slots, out)
        if progress is not None:
            progress(out)
    for table in rows:
        await _rotate_rows(sealer, table, out, batch_size, progress)
    return out


def _collect(run_id: str, data: bytes, seq: int | None, slots: dict[str, tuple[str, str]]) -> None:
    """The blob references of a stored snapshot (``seq`` None) or history row (one that does
    not decode is reported by its own reseal)."""
    try:
        if seq is None:
            blob_slots(run_id, decode_record(data), (), slots)
        else:
            blob_slots(run_id, None, decode_events(data), slots)
    except msgspec.DecodeError:
        pass
