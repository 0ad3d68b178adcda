"""Size limits, and large values kept out of the snapshot in a content-addressed blob table.

A run's snapshot is written whole at every checkpoint, so a 10 MB variable would cost 10 MB
per step: 10 GB for a thousand steps. Instead every value above `PayloadLimits.offload_bytes`
(a variable, the input, the output, a step's result, a signal's payload) is stored once in
``blobs`` under the SHA-256 of its encoding, and the snapshot or history event holds a small
reference (`BLOB_KEY`). A value that has not changed since the run's last checkpoint is
recognised by its encoding (compared, not hashed again). The first checkpoint of a run that
refers to a blob hands it over with an ``INSERT OR IGNORE`` (the database writes nothing for a
blob it holds already, from any run) together with the run's ``run_blobs`` row; a purge deletes
only blobs no ``run_blobs`` row refers to, so from then on the run's own row keeps the blob,
and a purge that deleted it a moment before that first checkpoint committed finds it stored
again by it. Batches commit in the order they are queued, so a later checkpoint of the run
never commits before the one that carried the blob.

Under encryption a blob holds its value already sealed (sealing comes first), and key rotation
rewrites it in place (`._rotate`): from then on its digest names it without being the hash of
its bytes, which nothing relies on.

Limits are checked on the same encodings: a value above `PayloadLimits.max_value_bytes`, or
vars above `PayloadLimits.max_context_bytes` in total, raise `PayloadError` naming the
variable or the step, before anything is written.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec

from .._errors import DatabaseCorruptError, PayloadError
from ._codec import decode_any, store_encode
from ._records import (
    AnyEvent,
    CallbackCompleted,
    RunRecord,
    RunStarted,
    RunSucceeded,
    SignalReceived,
    StepSucceeded,
)

#: The key of a reference to a blob, in place of the value: ``{BLOB_KEY: digest, "size": n}``.
BLOB_KEY = "$wayline.blob"
_MARK = BLOB_KEY.encode()
KiB = 1024
T = TypeVar("T")


class PayloadLimits(msgspec.Struct, frozen=True):
    """How large stored values may be, and from what size they leave the snapshot.

    Attributes:
        max_value_bytes: the largest one value may be, encoded (a variable, the input, the
            output, a step's result, a signal's payload): 256 KiB by default, Step Functions'
            limit per payload.
        max_context_bytes: the largest a run's vars may be in total, encoded (1 MiB by
            default).
        offload_bytes: values larger than this (16 KiB by default) are stored once in the
            blob table and referenced from the snapshot.
    """

    max_value_bytes: int = 256 * KiB
    max_context_bytes: int = 1024 * KiB
    offload_bytes: int = 16 * KiB

    def __post_init__(self) -> None:
        for name in ("max_value_bytes", "max_context_bytes", "offload_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"PayloadLimits.{name} must be a positive number of bytes, got {value!r}")


def _size(n: int) -> str:
    return f"{n / KiB / KiB:.1f} MiB" if n >= KiB * KiB else f"{n / KiB:.1f} KiB"


class Blob(msgspec.Struct, frozen=True, gc=False):
    digest: str
    data: bytes


class Offload(msgspec.Struct, gc=False):
    """What one checkpoint or create adds: the record and events to encode, the blobs not
    stored yet, and the digests the run refers to for the first time."""

    record: RunRecord
    events: list[AnyEvent]
    blobs: list[Blob]
    refs: list[str]


class Offloader:
    """The offload and limits of one store (see the module docstring)."""

    def __init__(self, limits: PayloadLimits | None = None) -> None:
        self.limits = limits or PayloadLimits()
        self._last: dict[str, dict[str, tuple[bytes, str]]] = {}  # run -> slot -> (encoding, digest)
        self._refs: dict[str, set[str]] = {}  # run -> digests its run_blobs rows hold

    def tracks(self, run_id: str) -> bool:
        """Whether the run held a large variable or input at its last checkpoint: its next
        snapshot is then encoded through `prepare` alone (sizes -1), not also whole first."""
        return bool(self._last.get(run_id))

    def run_ended(self, run_id: str) -> None:
        self._last.pop(run_id, None)
        self._refs.pop(run_id, None)

    def prepare(
        self, record: RunRecord, events: list[AnyEvent], snapshot_size: int, events_size: int
    ) -> Offload | None:
        """Offload the large values of ``record`` and ``events`` (None: nothing is large, the
        common case, told by the size of the whole snapshot, already encoded by the caller).

        Raises:
            PayloadError: a value or the vars above their limit, naming it.
        """
        limits = self.limits
        if 0 <= snapshot_size <= limits.offload_bytes and 0 <= events_size <= limits.offload_bytes:
            return None
        run_id = record.run_id
        last = self._last.setdefault(run_id, {})
        refs = self._refs.setdefault(run_id, set())
        out = Offload(record, list(events), [], [])
        seen: set[str] = set()

        sizes: list[int] = []

        def put(slot: str, value: Any, what: str, remember: bool) -> Any:
            data = store_encode(value)
            sizes.append(len(data))
            if len(data) > limits.max_value_bytes:
                raise PayloadError(
                    what,
                    f"it is {_size(len(data))} encoded, above the limit of {_size(limits.max_value_bytes)} per value "
                    "(keep large data outside the run and pass a reference, or raise "
                    "open_runtime(payload_limits=PayloadLimits(max_value_bytes=...)))",
                    run_id=run_id,
                )
            if len(data) <= limits.offload_bytes:
                return value
            before = last.get(slot) if remember else None
            digest = before[1] if before is not None and before[0] == data else hashlib.sha256(data).hexdigest()
            if remember:
                last[slot] = (data, digest)
            if digest not in seen:
                seen.add(digest)
                if digest not in refs:  # the run's first reference to it carries it
                    out.blobs.append(Blob(digest, data))
            return {BLOB_KEY: digest, "size": len(data)}

        new_vars: dict[str, Any] | None = None
        for key, value in record.vars.items():
            replaced = put(f"v:{key}", value, f"ctx.vars[{key!r}] of run {run_id!r}", True)
            if replaced is not value:
                if new_vars is None:
                    new_vars = dict(record.vars)
                new_vars[key] = replaced
        total = sum(sizes)
        if total > limits.max_context_bytes:
            raise PayloadError(
                f"ctx.vars of run {run_id!r}",
                f"they are {_size(total)} encoded in total, above the limit of {_size(limits.max_context_bytes)} "
                "per run (raise open_runtime(payload_limits=PayloadLimits(max_context_bytes=...)))",
                run_id=run_id,
            )
        changes: dict[str, Any] = {}
        if new_vars is not None:
            changes["vars"] = new_vars
        inp = put("input", record.input, f"input of run {run_id!r}", True)
        if inp is not record.input:
            changes["input"] = inp
        output = put("output", record.output, f"output of run {run_id!r}", False)
        if output is not record.output:
            changes["output"] = output
        tail = [self._event(e, put, run_id) for e in record.tail]
        if any(a is not b for a, b in zip(tail, record.tail, strict=True)):
            changes["tail"] = tuple(tail)
        out.events = [self._event(e, put, run_id) for e in events]
        if changes:
            out.record = msgspec.structs.replace(record, **changes)
        out.refs = [d for d in seen if d not in refs]
        refs.update(out.refs)
        return out

    @staticmethod
    def _event(event: AnyEvent, put: Callable[..., Any], run_id: str) -> AnyEvent:
        match event:
            case StepSucceeded(result=value):
                field, what = "result", f"result of step {event.step!r} (#{event.index}) of run {run_id!r}"
            case RunStarted(input=value):
                field, what = "input", f"input of run {run_id!r}"
            case RunSucceeded(output=value):
                field, what = "output", f"output of run {run_id!r}"
            case SignalReceived(payload=value):
                field, what = "payload", f"signal {event.name!r} of run {run_id!r}"
            case CallbackCompleted(result=value):
                field, what = "result", f"callback result of step {event.step!r} of run {run_id!r}"
            case _:
                return event
        replaced = put("event", value, what, False)
        return event if replaced is value else msgspec.structs.replace(event, **{field: replaced})


def is_blob_ref(value: Any) -> bool:
    """Whether ``value`` is a reference to a blob (a slot's value, offloaded)."""
    return type(value) is dict and isinstance(value.get(BLOB_KEY), str)


def has_refs(data: bytes) -> bool:
    """Whether an encoded snapshot or history row refers to blobs (one scan of the bytes)."""
    return _MARK in data


def refs_in(value: Any, out: set[str]) -> None:
    """Collect the blob digests referred to anywhere in decoded ``value``."""
    if type(value) is dict:
        digest = value.get(BLOB_KEY)
        if isinstance(digest, str):
            out.add(digest)
            return
        for v in value.values():
            refs_in(v, out)
    elif type(value) in (list, tuple):
        for v in value:
            refs_in(v, out)
    elif isinstance(value, msgspec.Struct):
        for field in value.__struct_fields__:
            refs_in(getattr(value, field), out)


def resolve(value: Any, blobs: dict[str, bytes]) -> Any:
    """``value`` with every blob reference replaced by the value it stands for."""
    if type(value) is dict:
        digest = value.get(BLOB_KEY)
        if isinstance(digest, str) and digest in blobs:
            return decode_any(blobs[digest])
        return {k: resolve(v, blobs) for k, v in value.items()}
    if type(value) is list:
        return [resolve(v, blobs) for v in value]
    if type(value) is tuple:
        return tuple(resolve(v, blobs) for v in value)
    if isinstance(value, msgspec.Struct):
        changes = {}
        for field in value.__struct_fields__:
            old = getattr(value, field)
            new = resolve(old, blobs)
            if new is not old:
                changes[field] = new
        return msgspec.structs.replace(value, **changes) if changes else value
    return value


#: Reads stored blobs by digest: the ones found (a store's read of its blob table).
BlobReader = Callable[[list[str]], Awaitable[dict[str, bytes]]]


async def hydrate(value: T, read: BlobReader, where: str, whose: str) -> T:
    """``value`` (a decoded snapshot or events) with its blob references resolved.

    Raises:
        DatabaseCorruptError: a referenced blob is not in the database.
    """
    digests: set[str] = set()
    refs_in(value, digests)
    if not digests:
        return value
    found = await read(sorted(digests))
    missing = digests - found.keys()
    if missing:
        raise DatabaseCorruptError(
            where, f"{whose} refers to {len(missing)} stored value(s) missing from the blob table ({min(missing)})"
        )
    resolved: T = resolve(value, found)
    return resolved
