"""Schedules as stored: one record per schedule, and what a store must do with them.

A schedule's whole state is one msgspec record (its spec, its policies, how far its fires
have been processed, the fires buffered or being started, recent actions, counters), stored
in one row beside two indexed columns: the workflow it starts and ``due_at``, when a runtime
must next look at it (its next fire, or now when something is waiting). Every write is a
compare-and-swap on the record's ``revision``: two runtimes, or a runtime and a CLI, that
change one schedule at the same moment cannot both succeed, so each fire is decided once.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, Protocol, runtime_checkable

import msgspec

from .._errors import EncryptionKeyError, SecretDecryptError
from ._codec import store_encode
from ._crypto import Sealer, may_hold_sealed
from ._secret import ext_hook

#: Fires decided by `overlap` policies (Temporal's names).
OVERLAP_POLICIES = ("skip", "buffer_one", "buffer_all", "cancel_other", "terminate_other", "allow_all")


class ScheduleSpec(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    """When a schedule fires: a cron expression in a time zone, or a fixed interval.

    Attributes:
        cron: a cron expression (5 fields, or 6 with seconds first), evaluated in ``tz``.
        every: seconds between fires, counted from ``start_at`` (or the epoch).
        tz: an IANA time zone name for ``cron``.
        jitter: each fire is delayed by up to this many seconds (a fixed amount per fire).
        start_at: no fire before this instant (epoch seconds).
        end_at: no fire after this instant.
    """

    cron: str | None = None
    every: float | None = None
    tz: str = "UTC"
    jitter: float = 0.0
    start_at: float | None = None
    end_at: float | None = None


class ScheduleFire(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    """One fire decided: its nominal time, the run it starts, and what asked for it."""

    at: float
    run_id: str
    kind: str = "schedule"  # "schedule", "trigger" or "backfill"
    overlap: str | None = None  # a trigger's or backfill's policy, if not the schedule's


class ScheduleRequest(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    """A trigger or a backfill asked for, which the next pass over the schedule carries out."""

    kind: str  # "trigger" or "backfill"
    ts: float  # when it was asked
    overlap: str | None = None
    run_id: str | None = None  # a trigger's run
    start: float | None = None  # a backfill's range, both ends included
    end: float | None = None


class ScheduleAction(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    """What a schedule did about one fire (kept for the last few, newest last).

    Attributes:
        at: the fire's nominal time.
        ts: when it was decided.
        outcome: ``started``, ``buffered``, ``skipped`` (by the overlap policy, or a full
            buffer), ``missed`` (outside the catch-up window) or ``cancelled`` (a run
            stopped by ``cancel_other``/``terminate_other``; ``run_id`` is that run).
        run_id: the run it started (or would have).
        kind: ``schedule``, ``trigger`` or ``backfill``.
        count: for ``missed``, how many consecutive fires this line stands for (``at`` is
            the first, ``until`` the last).
    """

    at: float
    ts: float
    outcome: str
    run_id: str | None = None
    kind: str = "schedule"
    count: int = 1
    until: float | None = None
    note: str | None = None


class ScheduleRecord(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    """A schedule's stored state. Changed only through a compare-and-swap on ``revision``.

    Attributes:
        watermark: the nominal time of the last scheduled fire processed (its decision is
            made); the next fire is the first after it.
        starting: fires decided to start whose runs may not exist yet: a pass starts them
            after the record is committed and again on the next pass (starting is idempotent
            on the run id), so a crash between the two loses none.
        running: runs it started that count for its overlap policy, until seen ended.
        cancelling: runs it cancelled (``cancel_other``/``terminate_other``), until seen ended.
        due_at: when a runtime must next look at it; None when nothing will happen by itself.
        unreadable: never stored: set when it is read, if its input could not be decrypted
            (a key the reader lacks, a damaged ciphertext), to the reason naming the key. The
            input is then left as stored (encrypted), and the schedule does not fire there.
    """

    schedule_id: str
    workflow: str
    spec: ScheduleSpec
    watermark: float
    input: Any = None
    version: str | None = None
    overlap: str = "skip"
    catchup_window: float = 86400.0
    paused: bool = False
    note: str | None = None
    declared: bool = False
    requests: tuple[ScheduleRequest, ...] = ()
    buffered: tuple[ScheduleFire, ...] = ()
    starting: tuple[ScheduleFire, ...] = ()
    running: tuple[str, ...] = ()
    cancelling: tuple[str, ...] = ()
    recent: tuple[ScheduleAction, ...] = ()
    started: int = 0
    skipped: int = 0
    missed: int = 0
    triggers: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0
    revision: int = 0
    due_at: float | None = None
    unreadable: str | None = None


_decoder = msgspec.msgpack.Decoder(ScheduleRecord, ext_hook=ext_hook)


def input_field(schedule_id: str) -> str:
    """What a schedule's encrypted input is bound to (its associated data)."""
    return f"input of schedule {schedule_id!r}"


def encode_schedule(sealer: Sealer, record: ScheduleRecord) -> bytes:
    """``record`` as stored: the Secrets in its input encrypted, or with ``encrypt_payloads``
    the whole input, bound to the schedule.

    Raises:
        EncryptionKeyError: a Secret in the input and no key (nothing is stored).
    """
    if record.unreadable is not None:  # read, not stored: its input is stored as it was read
        record = msgspec.structs.replace(record, unreadable=None)
    if record.input is not None:
        sealed = sealer.seal_loose(record.input, input_field(record.schedule_id))
        if sealed is not record.input:
            record = msgspec.structs.replace(record, input=sealed)
    return store_encode(record)


def decode_stored_schedule(data: bytes) -> ScheduleRecord:
    """A stored schedule as it is stored (its input still encrypted, if it was)."""
    return _decoder.decode(data)


def decode_schedule(sealer: Sealer, data: bytes) -> ScheduleRecord:
    """A stored schedule, its input decrypted and checked against the schedule.

    An input that cannot be decrypted (encrypted under a key ``sealer`` lacks, or altered or
    moved from elsewhere) does not make the schedule unreadable as a whole: it is returned as
    stored, with `ScheduleRecord.unreadable` saying why, so that one such schedule stops
    neither a runtime's opening nor its other schedules.

    Raises:
        msgspec.DecodeError: ``data`` is not a schedule.
    """
    record = decode_stored_schedule(data)
    if record.input is not None and may_hold_sealed(data):
        try:
            opened = sealer.open_loose(record.input, input_field(record.schedule_id))
        except (EncryptionKeyError, SecretDecryptError) as exc:
            return msgspec.structs.replace(record, unreadable=str(exc))
        if opened is not record.input:
            record = msgspec.structs.replace(record, input=opened)
    return record


#: One compare-and-swap write: the new record, and the revision the stored one must have
#: (None: no schedule with that id may exist yet).
ScheduleWrite = tuple[ScheduleRecord, int | None]


@runtime_checkable
class ScheduleStore(Protocol):
    """Where a store keeps schedules (``store.schedules``)."""

    async def get(self, schedule_id: str) -> ScheduleRecord | None:
        """The schedule, if it exists."""
        ...

    async def all(self) -> list[ScheduleRecord]:
        """Every schedule, by id."""
        ...

    async def due(self, until: float, workflows: Collection[str], limit: int = 1000) -> list[ScheduleRecord]:
        """Schedules of ``workflows`` due at or before ``until``, earliest first."""
        ...

    async def next_due(self, workflows: Collection[str]) -> float | None:
        """The earliest ``due_at`` of the schedules of ``workflows``, if any."""
        ...

    async def put(self, writes: Sequence[ScheduleWrite]) -> list[bool]:
        """Apply each compare-and-swap write, in one transaction; whether each was applied
        (False: the stored revision was not the expected one, or the schedule exists when it
        was expected not to, or is gone). ``record.revision`` is stored as given."""
        ...

    async def delete(self, schedule_id: str, expected: int) -> bool:
        """Delete the schedule if its revision is ``expected``; whether it was deleted."""
        ...
