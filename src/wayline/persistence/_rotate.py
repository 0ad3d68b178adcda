"""Key rotation: re-encrypt what a database stores with its runtime's current key.

A store walks its runs in small batches, in run id order: each snapshot and history row that
holds a value encrypted under another key is decrypted (checked against its run and field as
always), encrypted again with the current key, and written back only if the row is still the
one that was read (a compare-and-set on its bytes). A run in flight that checkpointed in the
meantime has written its values with the current key already (every checkpoint seals with
it), so losing that race loses nothing; the run's next checkpoint, or the next rotation, takes
it. Rows that cannot be opened (a key the runtime lacks, a damaged ciphertext) are counted and
left as they were.

Not rotated: values offloaded to the blob table (`._blobs`) under ``encrypt_payloads=True``
(they keep their key until their run writes them again; keep the old key until such runs end)
and inbox messages (delivered and deleted within moments).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec

from .._errors import EncryptionKeyError, SecretDecryptError
from ._codec import decode_events, decode_record, store_encode
from ._crypto import Sealer, may_hold_sealed
from ._records import AnyEvent, RunRecord
from ._secret import SealedPayload


class KeyRotation(msgspec.Struct, kw_only=True):
    """What one rotation did.

    Attributes:
        key_id: the key everything was re-encrypted with.
        runs: runs looked at.
        snapshots: snapshots re-encrypted.
        history_rows: history rows re-encrypted.
        raced: rows a run's own checkpoint wrote meanwhile (already under the current key).
        failed: ``(run_id, reason)`` for rows left as they were.
    """

    key_id: str
    runs: int = 0
    snapshots: int = 0
    history_rows: int = 0
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


async def rotate(
    sealer: Sealer,
    read_runs: ReadRuns,
    read_history: ReadHistory,
    write: Write,
    *,
    batch_size: int = 100,
    progress: Callable[[KeyRotation], Any] | None = None,
    wrap: Callable[[Write], Write] | None = None,
) -> KeyRotation:
    """Re-encrypt every stored run with ``sealer``'s current key, ``batch_size`` runs a batch
    (one read and one short write transaction each, so checkpoints go on in between).
    ``wrap`` wraps each batch's write (`wayline.testing.FaultInjectingStore` counts them)."""
    if wrap is not None:
        write = wrap(write)
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
        rows = await read_runs(after, batch_size)
        if not rows:
            return out
        after = rows[-1][0]
        out.runs += len(rows)
        snaps: list[tuple[str, bytes, bytes]] = []
        for run_id, data in rows:
            try:
                new = reseal_snapshot(sealer, run_id, data)
            except (SecretDecryptError, EncryptionKeyError, msgspec.DecodeError) as exc:
                out.failed.append((run_id, str(exc)))
                continue
            if new is not None:
                snaps.append((run_id, data, new))
        hist: list[tuple[str, int, bytes, bytes]] = []
        for run_id, seq, data in await read_history([r for r, _ in rows]):
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
        if progress is not None:
            progress(out)
