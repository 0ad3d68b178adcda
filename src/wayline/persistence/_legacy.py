"""The migration of stored format 1 to the current one, applied as old data is decoded.

Format 1 described waits and inbox messages with strings (``Wait.kind`` plus a ``key`` to
parse, ``InboxMessage.kind`` plus ``payload["op"]``) and kept an applied cancel in
``metadata["cancel"]``. Format 2 stores tagged unions under a ``type`` field instead, so an
old wait or message never decodes as a new one by accident: it fails the current decoder and
comes here, where it is read as plain data, rewritten into the new shape and converted.

Nothing is rewritten on disk: a snapshot read in the old form is written in the new one by
the run's next checkpoint, and old history rows (whose events did not change) stay as they are.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ._records import FORMAT, AnyInboxMessage, InboxMessage, RunRecord

_plain = msgspec.msgpack.Decoder()


class LegacyFormatError(ValueError):
    """Data that is neither the current format nor format 1."""


def _wait_v2(old: dict[str, Any]) -> dict[str, Any]:
    kind, key = old.get("kind"), str(old.get("key", ""))
    new: dict[str, Any] = {"type": kind}
    if "step" in old:
        new["step"] = old["step"]
    if old.get("due") is not None:
        new["due"] = old["due"]
    if kind == "retry":  # key was "<activity>#<index>"
        new["activity"] = key.rpartition("#")[0]
    elif kind == "signal":  # key was the signal's name
        new["signal"] = key
    elif kind == "callback":  # key was the newest token digest, keys the older ones
        new["label"] = old.get("label", "")
        new["digests"] = [*old.get("keys", ()), key]
        for field in ("deadline", "heartbeat"):
            if old.get(field) is not None:
                new[field] = old[field]
    elif kind != "timer":  # a timer's key was "sleep:<index>", which the step already says
        raise LegacyFormatError(f"unknown wait kind {kind!r}")
    return new


def upgrade_record(data: bytes) -> RunRecord:
    """Decode a format-1 snapshot as a current `RunRecord`.

    Raises:
        msgspec.DecodeError: ``data`` is not a snapshot of either format.
    """
    raw = _plain.decode(data)
    if not isinstance(raw, dict):
        raise msgspec.ValidationError("a run snapshot must be a map")
    try:
        raw["waits"] = [_wait_v2(w) if "kind" in w else w for w in raw.get("waits", ())]
    except (LegacyFormatError, TypeError, AttributeError) as exc:
        raise msgspec.ValidationError(f"the snapshot's waits are not readable: {exc}") from None
    metadata = raw.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("cancel"), dict):
        cancel = metadata.pop("cancel")
        raw["cancel"] = {"reason": cancel.get("reason"), "index": int(cancel.get("index", -1))}
    raw["format"] = FORMAT
    return msgspec.convert(raw, RunRecord)


def upgrade_message(data: bytes) -> InboxMessage:
    """Decode a format-1 inbox message as a current one.

    Raises:
        msgspec.DecodeError: ``data`` is not an inbox message of either format.
    """
    raw = _plain.decode(data)
    if not isinstance(raw, dict):
        raise msgspec.ValidationError("an inbox message must be a map")
    kind, ts, payload = raw.get("kind"), raw.get("ts", 0.0), raw.get("payload")
    new: dict[str, Any]
    if kind == "signal":
        new = {"type": "signal", "name": raw.get("name", ""), "payload": payload}
    elif kind == "cancel":
        new = {"type": "cancel", "reason": payload}
    elif kind == "callback" and isinstance(payload, dict):
        op, digest = payload.get("op"), raw.get("name", "")
        if op == "complete":
            new = {"type": "callback.complete", "digest": digest, "output": payload.get("output")}
        elif op == "fail":
            new = {
                "type": "callback.fail",
                "digest": digest,
                "error": str(payload.get("error") or "Error"),
                "cause": payload.get("cause"),
            }
        elif op == "heartbeat":
            new = {"type": "callback.heartbeat", "digest": digest}
        else:
            raise msgspec.ValidationError(f"unknown callback operation {op!r} in an inbox message")
    else:
        raise msgspec.ValidationError(f"unknown inbox message kind {kind!r}")
    new["ts"] = ts
    message: InboxMessage = msgspec.convert(new, AnyInboxMessage)
    return message
