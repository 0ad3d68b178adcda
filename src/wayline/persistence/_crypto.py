"""Encryption at rest: a runtime's keys (`KeyRing`) and the sealing of what a store writes.

AES-256-GCM through the ``cryptography`` package (an audited AEAD implementation; we do not
write our own). Each encrypted value is a msgpack extension (`._secret`): ``MAGIC``, the key
id (one length byte, then UTF-8), a 12-byte random nonce, then ciphertext and tag. The
associated data binds it to its format, key id, run and field (``vars['token']``,
``input['card'][0]``, ``result of step #3``...): a ciphertext copied into another run or
another field does not open (`SecretDecryptError`), nor does one altered by a single bit.

The keys belong to the runtime (its store's `Sealer`), not to the process: two runtimes in one
process may use different keys. The newest key encrypts; every key given decrypts, so keys
rotate by giving the new key and keeping the old ones until `rotate` has re-encrypted what is
stored.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import operator
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .._errors import EncryptionKeyError, SecretDecryptError
from ._blobs import is_blob_ref
from ._codec import ENCODE_ERRORS, decode_any, encode_raw, encode_stored, payload_error
from ._records import (
    AnyEvent,
    CallbackCompleted,
    ChildEnded,
    ContinuedAsNew,
    RunRecord,
    RunStarted,
    RunSucceeded,
    SignalReceived,
    StepSucceeded,
    UpdateAccepted,
    UpdateAnswered,
)
from ._secret import MAGIC, PAYLOAD, SEALED, SealedPayload, Secret, Unsealed, key_id_of

T = TypeVar("T")

ENV_VAR = "WAYLINE_ENCRYPTION_KEY"
_NONCE = 12
_aad_encoder = msgspec.msgpack.Encoder()

KeyInput = bytes | str


def parse_key(value: KeyInput, what: str) -> bytes:
    """A 32-byte AES-256 key given as bytes, or as hex (64 characters) or base64 text.

    Raises:
        EncryptionKeyError: anything else, saying how to make one.
    """
    if isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
    elif isinstance(value, str):
        text = value.strip()
        raw = b""
        if len(text) == 64:
            try:
                raw = bytes.fromhex(text)
            except ValueError:
                raw = b""
        if not raw:
            try:
                raw = base64.b64decode(
                    text + "=" * (-len(text) % 4), altchars=b"-_" if "-" in text or "_" in text else None, validate=True
                )
            except (binascii.Error, ValueError):
                raw = b""
    else:
        raise EncryptionKeyError(
            f"{what} must be a 32-byte key as bytes, or as hex or base64 text, got {type(value).__name__}"
        )
    if len(raw) != 32:
        raise EncryptionKeyError(
            f"{what} must be a 32-byte AES-256 key: 32 raw bytes, 64 hex characters or base64 text of 32 bytes "
            f'(got {len(raw)} bytes). Make one with: python -c "import os, base64; '
            'print(base64.b64encode(os.urandom(32)).decode())"'
        )
    return raw


def default_key_id(key: bytes) -> str:
    """A key's id when none is given: from a hash of the key, so the same key has the same id
    in every process (32 bits of a SHA-256: tells keys apart, reveals nothing usable)."""
    return "k" + hashlib.sha256(b"wayline key id\x00" + key).hexdigest()[:8]


def _split(text: str) -> tuple[str | None, str]:
    """``"id:key"`` or ``"key"`` (base64 has no colon, nor has hex)."""
    if ":" in text:
        key_id, _, key = text.partition(":")
        return key_id.strip() or None, key
    return None, text


class KeyRing:
    """A runtime's keys by id; the first is the current one, which encrypts."""

    def __init__(self, keys: Iterable[tuple[str, bytes]]) -> None:
        self._aead: dict[str, AESGCM] = {}
        self.current: str | None = None
        for key_id, key in keys:
            if not key_id or len(key_id.encode()) > 255:
                raise EncryptionKeyError(f"a key id must be 1 to 255 bytes of text, got {key_id!r}")
            if key_id in self._aead:
                raise EncryptionKeyError(f"two keys have the id {key_id!r}; give each key its own id")
            self._aead[key_id] = AESGCM(key)
            if self.current is None:
                self.current = key_id

    @classmethod
    def from_options(
        cls,
        encryption_key: KeyInput | None,
        encryption_keys: Mapping[str, KeyInput] | Iterable[KeyInput] | None,
        environ: Mapping[str, str] | None = None,
    ) -> KeyRing:
        """The keys of ``open_runtime(encryption_key=, encryption_keys=)``, else of
        ``WAYLINE_ENCRYPTION_KEY`` (``"[id:]key,[id:]key..."``, the first the current one)."""
        found: list[tuple[str, bytes]] = []

        def add(key_id: str | None, value: KeyInput, what: str) -> None:
            if isinstance(value, str):
                given_id, value = _split(value)
                key_id = key_id or given_id
            key = parse_key(value, what)
            found.append((key_id or default_key_id(key), key))

        if encryption_key is not None:
            add(None, encryption_key, "encryption_key")
        if isinstance(encryption_keys, Mapping):
            for key_id, value in encryption_keys.items():
                add(str(key_id), value, f"encryption_keys[{key_id!r}]")
        elif encryption_keys is not None:
            if isinstance(encryption_keys, (str, bytes)):
                raise EncryptionKeyError(
                    "encryption_keys takes a mapping of id to key, or a list of keys; for one key use encryption_key="
                )
            for i, value in enumerate(encryption_keys):
                add(None, value, f"encryption_keys[{i}]")
        if not found:
            env = (os.environ if environ is None else environ).get(ENV_VAR, "").strip()
            for i, part in enumerate(p for p in env.split(",") if p.strip()):
                add(None, part.strip(), f"{ENV_VAR} (key {i + 1})")
        return cls(found)

    def __bool__(self) -> bool:
        return self.current is not None

    @property
    def ids(self) -> list[str]:
        return list(self._aead)

    def get(self, key_id: str) -> AESGCM | None:
        return self._aead.get(key_id)


def _aad(code: int, key_id: str, run_id: str, field: str) -> bytes:
    return _aad_encoder.encode(("wayline", 1, code, key_id, run_id, field))


def event_slot(event: AnyEvent) -> tuple[str, str] | None:
    """The attribute of an event that holds a user value, and its field name."""
    match event:
        case StepSucceeded():
            return "result", f"result of step #{event.index}"
        case RunStarted():
            return "input", "input"
        case RunSucceeded():
            return "output", "output"
        case SignalReceived():
            return "payload", f"signal {event.name!r} #{event.index}"
        case CallbackCompleted():
            return "result", f"callback result of step #{event.index}"
        case ChildEnded():
            return "output", f"output of child #{event.index}"
        case UpdateAccepted():
            return "payload", f"update {event.update_id!r}"
        case UpdateAnswered():
            return "result", f"answer to update {event.update_id!r}"
        case ContinuedAsNew():
            return "input", f"input of segment {event.segment}"
    return None


class Sealer:
    """The encryption of one runtime's store: seals what it writes, opens what it reads."""

    def __init__(self, keys: KeyRing, *, encrypt_payloads: bool = False, strict: bool = False) -> None:
        if encrypt_payloads and not keys:
            raise EncryptionKeyError(
                f"encrypt_payloads=True needs a key: pass open_runtime(encryption_key=...) or set {ENV_VAR}"
            )
        self.keys = keys
        self.payloads = encrypt_payloads
        # The runtime that runs the runs refuses to load one holding a Secret it cannot open
        # (`EncryptionKeyError`): the run stays in the database as it is until a runtime with
        # the key takes it. A client (describe, the CLI) shows such a secret sealed instead.
        self.strict = strict
        # run -> slot -> (plaintext encoding, its ciphertext): an unchanged variable keeps its
        # ciphertext, so a checkpoint does not encrypt it again and its offloaded blob is reused.
        self._cache: dict[str, dict[str, tuple[bytes, SealedPayload]]] = {}
        # run -> (its tail as last sealed, the sealed tail): an event rides in the snapshot's
        # tail at every checkpoint until the tail moves to the history table (and is written
        # there once more); it is sealed once. Reuse goes by the identity of the (frozen) event
        # objects, which the entry holds alive: an equal but distinct event is sealed afresh.
        self._tails: dict[str, tuple[tuple[AnyEvent, ...], tuple[AnyEvent, ...]]] = {}

    def run_ended(self, run_id: str) -> None:
        self._cache.pop(run_id, None)
        self._tails.pop(run_id, None)

    # --- sealing ---------------------------------------------------------------------------

    def _encrypt(self, code: int, data: bytes, run_id: str, field: str) -> msgspec.msgpack.Ext:
        key_id = self.keys.current
        if key_id is None:
            raise EncryptionKeyError(
                f"the Secret at {field} cannot be stored without an encryption key: pass "
                f"open_runtime(encryption_key=...) or set {ENV_VAR} (nothing was stored)",
                run_id=run_id,
            )
        aead = self.keys.get(key_id)
        assert aead is not None
        nonce = os.urandom(_NONCE)
        kid = key_id.encode()
        body = aead.encrypt(nonce, data, _aad(code, key_id, run_id, field))
        return msgspec.msgpack.Ext(code, b"".join((MAGIC, bytes((len(kid),)), kid, nonce, body)))

    def seal_secret(self, secret: Secret[Any], run_id: str, field: str) -> Secret[Any]:
        if secret._sealed is not None:
            return secret
        ext = self._encrypt(SEALED, encode_raw(secret._value), run_id, field)
        return Secret._from_sealed(ext)

    def _seal_secrets(self, value: Any, run_id: str, field: str) -> Any:
        if isinstance(value, Secret):
            return self.seal_secret(value, run_id, field)
        return _map(value, field, lambda v, f: self._seal_secrets(v, run_id, f))

    def _seal_value(self, value: Any, run_id: str, field: str, slot: str | None) -> Any:
        if not self.payloads:
            return self._seal_secrets(value, run_id, field)
        if value is None or isinstance(value, SealedPayload) or is_blob_ref(value):
            # A reference to an offloaded value is met only by key rotation, which seals a
            # stored record again: values are offloaded after they are sealed, so the blob
            # holds the value sealed, and the reference must stay readable as it is.
            return value
        data = encode_raw(value)  # a Secret inside stays plaintext: the whole is encrypted
        if slot is not None:
            cache = self._cache.setdefault(run_id, {})
            before = cache.get(slot)
            if before is not None and before[0] == data:
                return before[1]
        sealed = SealedPayload(self._encrypt(PAYLOAD, data, run_id, field))
        if slot is not None:
            cache[slot] = (data, sealed)
        return sealed

    def seal_event(self, event: AnyEvent, run_id: str) -> AnyEvent:
        slot = event_slot(event)
        if slot is None:
            return event
        attr, field = slot
        value = getattr(event, attr)
        sealed = self._seal_value(value, run_id, field, None)
        return event if sealed is value else msgspec.structs.replace(event, **{attr: sealed})

    def seal(
        self, record: RunRecord, events: Iterable[AnyEvent], *, cache: bool = True
    ) -> tuple[RunRecord, list[AnyEvent]]:
        """``record`` and ``events`` with every `Secret` encrypted (every value, with
        ``encrypt_payloads``), each bound to the run and its field.

        Raises:
            EncryptionKeyError: a Secret to store and no key.
        """
        run_id = record.run_id
        changes: dict[str, Any] = {}
        for attr in ("input", "output", "state"):
            old = getattr(record, attr)
            new = self._seal_value(old, run_id, attr, attr if cache and attr != "output" else None)
            if new is not old:
                changes[attr] = new
        if record.vars:
            new_vars = {
                k: self._seal_value(v, run_id, f"vars[{k!r}]", f"v:{k}" if cache else None)
                for k, v in record.vars.items()
            }
            if any(new_vars[k] is not v for k, v in record.vars.items()):
                changes["vars"] = new_vars
        if not cache:
            seal_event = self.seal_event
            tail = tuple(seal_event(e, run_id) for e in record.tail)
            sealed_events = [seal_event(e, run_id) for e in events]
        else:
            tail, sealed_events = self._seal_tail(run_id, record.tail, events)
        if any(a is not b for a, b in zip(tail, record.tail, strict=True)):
            changes["tail"] = tail
        out = msgspec.structs.replace(record, **changes) if changes else record
        return out, sealed_events

    def _seal_tail(
        self, run_id: str, tail: tuple[AnyEvent, ...], events: Iterable[AnyEvent]
    ) -> tuple[tuple[AnyEvent, ...], list[AnyEvent]]:
        """``tail`` and ``events`` sealed, each event sealed once while it stays in the tail.

        A tail only grows (the new events appended) until it moves to the history whole, so
        the last tail sealed is a prefix of this one, object for object, and its sealed form
        is reused as it is; ``events`` are the new tail's last events, or the last tail (and
        more) moving to the history.
        """
        known = self._tails.pop(run_id, None)
        out = self._extend(known, tail, run_id)
        if tail:
            self._tails[run_id] = (tail, out)
        items = events if isinstance(events, (list, tuple)) else list(events)
        k, n = len(items), len(tail)
        if k <= n and all(map(operator.is_, items, tail[n - k :])):
            return out, list(out[n - k :])
        return out, list(self._extend(known, tuple(items), run_id))

    def _extend(
        self, known: tuple[tuple[AnyEvent, ...], tuple[AnyEvent, ...]] | None, items: tuple[AnyEvent, ...], run_id: str
    ) -> tuple[AnyEvent, ...]:
        """``items`` sealed, reusing ``known`` (events and their sealed forms) if ``items``
        starts with those very events."""
        head: tuple[AnyEvent, ...] = ()
        if known is not None and len(items) >= len(known[0]) and all(map(operator.is_, items, known[0])):
            head, items = known[1], items[len(known[0]) :]
        return head + tuple(self.seal_event(e, run_id) for e in items)

    def seal_loose(self, value: Any, field: str) -> Any:
        """A value stored outside any run (an event's data, a schedule's input), sealed as a
        run's values are: its Secrets, or with ``encrypt_payloads`` the whole value, bound to
        ``field`` (which names what holds it, e.g. ``data of event 'paid' (id 'e1')``).

        Raises:
            EncryptionKeyError: a Secret to store and no key.
        """
        return self._seal_value(value, "", field, None)

    def open_loose(self, value: Any, field: str, seen: set[str] | None = None) -> Any:
        """`seal_loose`'s value, opened and checked against ``field``.

        Raises:
            SecretDecryptError: a ciphertext altered, or moved from another value.
            EncryptionKeyError: a value encrypted whole under a key this runtime lacks.
        """
        return self._open_value(value, "", field, seen)

    def seal_value(self, value: Any, run_id: str, field: str) -> Any:
        """One value of run ``run_id`` (its slot ``field``: ``input``, ``vars['k']``, ``result
        of step #3``...) sealed as `seal` seals it, without the cache (key rotation)."""
        return self._seal_value(value, run_id, field, None)

    def open_value(self, value: Any, run_id: str, field: str, seen: set[str] | None = None) -> Any:
        """`seal_value`'s value, opened and checked against its run and ``field``."""
        return self._open_value(value, run_id, field, seen)

    # --- opening ---------------------------------------------------------------------------

    def _decrypt(self, ext: msgspec.msgpack.Ext, run_id: str, field: str, seen: set[str] | None) -> bytes | None:
        data = bytes(ext.data)
        key_id = key_id_of(data)
        if seen is not None:
            seen.add(key_id)
        aead = self.keys.get(key_id)
        if aead is None:
            return None
        start = len(MAGIC) + 1 + len(key_id.encode())
        nonce, body = data[start : start + _NONCE], data[start + _NONCE :]
        if not data.startswith(MAGIC) or len(nonce) != _NONCE:
            raise SecretDecryptError(run_id, field, key_id, "it is not in wayline's format (damaged)")
        try:
            return aead.decrypt(nonce, body, _aad(ext.code, key_id, run_id, field))
        except InvalidTag:
            raise SecretDecryptError(
                run_id,
                field,
                key_id,
                "its authentication tag does not match: it was altered, or it belongs to another run or field",
            ) from None

    def _open_value(self, value: Any, run_id: str, field: str, seen: set[str] | None) -> Any:
        if isinstance(value, SealedPayload):
            plain = self._decrypt(value.ext, run_id, field, seen)
            if plain is None:
                raise self._missing(value.ext, run_id, field, "value")
            return decode_any(plain)
        if isinstance(value, Secret):
            if value._sealed is None:
                return value
            plain = self._decrypt(value._sealed, run_id, field, seen)
            if plain is None:
                if self.strict:
                    raise self._missing(value._sealed, run_id, field, "Secret")
                return value  # a client's view: shown sealed, revealing it says which key
            return Secret(decode_any(plain))
        return _map(value, field, lambda v, f: self._open_value(v, run_id, f, seen))

    def _missing(self, ext: msgspec.msgpack.Ext, run_id: str, field: str, what: str) -> EncryptionKeyError:
        key_id = key_id_of(ext.data)
        return EncryptionKeyError(
            f"the {what} at {field} was encrypted with key {key_id!r}, which this runtime was not given "
            f"(it has {self.keys.ids or 'none'}); open the runtime with that key "
            f"(open_runtime(encryption_key=...) or encryption_keys=..., or {ENV_VAR}). Nothing was changed: "
            + ("the run waits in the database as it is" if run_id else "it stays in the database as it is"),
            run_id=run_id,
            key_id=key_id,
        )

    def open_event(self, event: AnyEvent, run_id: str, seen: set[str] | None = None) -> AnyEvent:
        slot = event_slot(event)
        if slot is None:
            return event
        attr, field = slot
        value = getattr(event, attr)
        opened = self._open_value(value, run_id, field, seen)
        return event if opened is value else msgspec.structs.replace(event, **{attr: opened})

    def open_record(self, record: RunRecord, seen: set[str] | None = None) -> RunRecord:
        """``record`` with what is encrypted in it decrypted and checked against its run and
        field (a `Secret` under a key this runtime lacks stays sealed).

        Raises:
            SecretDecryptError: a ciphertext altered, or copied from another run or field.
            EncryptionKeyError: a value encrypted whole (``encrypt_payloads``) under a key this
                runtime lacks.
        """
        run_id = record.run_id
        changes: dict[str, Any] = {}
        for attr in ("input", "output", "state"):
            old = getattr(record, attr)
            new = self._open_value(old, run_id, attr, seen)
            if new is not old:
                changes[attr] = new
        if record.vars:
            new_vars = {k: self._open_value(v, run_id, f"vars[{k!r}]", seen) for k, v in record.vars.items()}
            if any(new_vars[k] is not v for k, v in record.vars.items()):
                changes["vars"] = new_vars
        if record.tail:
            tail = tuple(self.open_event(e, run_id, seen) for e in record.tail)
            if any(a is not b for a, b in zip(tail, record.tail, strict=True)):
                changes["tail"] = tail
        return msgspec.structs.replace(record, **changes) if changes else record

    def open_events(self, events: list[AnyEvent], run_id: str, seen: set[str] | None = None) -> list[AnyEvent]:
        return [self.open_event(e, run_id, seen) for e in events]

    def open_message(self, message: Any, run_id: str, seen: set[str] | None = None) -> Any:
        """An inbox message: its payload sealed as ``inbox`` (see `seal_message`)."""
        return self._open_value(message, run_id, "inbox", seen)

    def seal_message(self, message: Any, run_id: str) -> Any:
        """An inbox message for ``run_id``: its Secrets sealed (as ``inbox.<attribute>...``),
        and with ``encrypt_payloads`` its payload encrypted whole."""
        if not self.payloads or not isinstance(message, msgspec.Struct):
            return self._seal_secrets(message, run_id, "inbox")
        changes = {}
        for attr in ("payload", "output"):
            value = getattr(message, attr, None)
            if value is not None:
                changes[attr] = self._seal_value(value, run_id, f"inbox.{attr}", None)
        return msgspec.structs.replace(message, **changes) if changes else message


def encode_message(sealer: Sealer, message: Any, run_id: str) -> bytes:
    """An inbox message as a store writes it: as it is in the common case (one encode, no walk
    over the payload), its Secrets sealed if it holds any, its payload encrypted whole with
    ``encrypt_payloads``.

    Raises:
        PayloadError: the message cannot be stored (a payload nested too deeply or holding
            itself, a type msgspec does not know).
    """
    what = f"a message for run {run_id!r}"
    if not sealer.payloads:
        try:
            return encode_stored(message, what=what, run_id=run_id)
        except Unsealed:
            pass
    try:
        sealed = sealer.seal_message(message, run_id)
    except ENCODE_ERRORS as exc:
        raise payload_error(exc, what, run_id) from exc
    return encode_stored(sealed, what=what, run_id=run_id)


def may_hold_sealed(data: bytes) -> bool:
    """Whether stored bytes may hold an encrypted value (one scan of the bytes)."""
    return MAGIC in data


def _map(value: Any, field: str, fn: Any) -> Any:
    """``value`` with ``fn(child, child_field)`` applied to each child; the same object when
    nothing changed (the common case: no copy)."""
    tp = type(value)
    if tp is dict:
        out: dict[Any, Any] | None = None
        for k, v in value.items():
            new = fn(v, f"{field}[{k!r}]")
            if new is not v:
                if out is None:
                    out = dict(value)
                out[k] = new
        return value if out is None else out
    if tp is list or tp is tuple:
        items = [fn(v, f"{field}[{i}]") for i, v in enumerate(value)]
        if all(a is b for a, b in zip(items, value, strict=True)):
            return value
        return items if tp is list else tuple(items)
    if isinstance(value, msgspec.Struct):
        changes = {}
        for name in value.__struct_fields__:
            old = getattr(value, name)
            new = fn(old, f"{field}.{name}")
            if new is not old:
                changes[name] = new
        return msgspec.structs.replace(value, **changes) if changes else value
    return value


def encode_sealed(
    sealer: Sealer, record: RunRecord, events: Sequence[AnyEvent], encode: Callable[[RunRecord, list[AnyEvent]], T]
) -> T:
    """``encode(record, events)`` of what a store writes, sealed as its runtime's keys say.

    Without ``encrypt_payloads`` the common case costs nothing: only a record that holds a
    plaintext `Secret` (the store encoder raises `Unsealed` for it) is sealed and encoded again.
    """
    if sealer.payloads:
        sealed, sealed_events = sealer.seal(record, events)
        out = encode(sealed, sealed_events)
    else:
        try:
            return encode(record, list(events))
        except Unsealed:
            sealed, sealed_events = sealer.seal(record, events)
            out = encode(sealed, sealed_events)
    if record.status.finished:
        sealer.run_ended(record.run_id)
    return out
