"""`Secret`: a value that is encrypted wherever it is stored and shown as ``Secret('***')``.

A `Secret` is unknown to msgspec on purpose, so every encoder meets it through a hook:

- the transient encoder (`wayline.persistence.encode`, used in memory: replay shaping, input
  checks) keeps it as a msgpack extension holding the plaintext (`PLAIN`), which the decoders
  turn back into a `Secret`. Those bytes never reach a database;
- the store encoder (`store_encode`) refuses it with `Unsealed`: a store then seals the record
  (`wayline.persistence._crypto`), replacing each `Secret` with its ciphertext (`SEALED`), and
  encodes again. A store never writes a plaintext secret, whatever path a value takes.

A secret read back from a database is first a sealed `Secret` (its ciphertext, revealed by
nobody); the store that read it opens it with its runtime's keys, checking that the ciphertext
belongs to that run and field.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import msgspec

from .._errors import EncryptionKeyError

T = TypeVar("T")

#: msgpack extension codes (application range 0..127).
PLAIN = 41  # a Secret's plaintext, in memory only (inside an encrypted payload at most)
SEALED = 42  # a Secret's ciphertext: header, key id, nonce, AES-256-GCM ciphertext and tag
PAYLOAD = 43  # a whole stored value encrypted (open_runtime(encrypt_payloads=True))

#: The first bytes of a sealed extension's data: a stored row holds encrypted values iff it
#: contains this (or, rarely, a random run of ciphertext does: then the row is only walked).
MAGIC = b"\x00wl\x01"

_inner = msgspec.msgpack.Encoder()
_inner_decoder = msgspec.msgpack.Decoder()


class Secret(Generic[T]):
    """A value kept secret: encrypted at rest with AES-256-GCM, shown as ``Secret('***')``.

    Put one in a run's input, its vars or an activity's result; give the runtime a key
    (``open_runtime(encryption_key=...)`` or ``WAYLINE_ENCRYPTION_KEY``). Inside an activity,
    `reveal` gives the value. Two secrets are equal when their values are.
    """

    __slots__ = ("_sealed", "_value")

    def __init__(self, value: T) -> None:
        if isinstance(value, Secret):
            raise TypeError("Secret(Secret(...)): a secret is already a secret; pass the value itself")
        self._value = value
        self._sealed: msgspec.msgpack.Ext | None = None

    @classmethod
    def _from_sealed(cls, ext: msgspec.msgpack.Ext) -> Secret[Any]:
        self: Secret[Any] = cls.__new__(cls)
        self._value = None
        self._sealed = ext
        return self

    @property
    def sealed(self) -> bool:
        """Whether this secret was read back from a database by a runtime without its key."""
        return self._sealed is not None

    def reveal(self) -> T:
        """The value.

        Raises:
            EncryptionKeyError: the secret was read from a database by a runtime that was not
                given the key it was encrypted with.
        """
        if self._sealed is not None:
            key_id = key_id_of(self._sealed.data)
            raise EncryptionKeyError(
                f"this Secret was encrypted with key {key_id!r}, which the runtime was not given; open it "
                "with that key (open_runtime(encryption_key=...) or encryption_keys=..., or "
                "WAYLINE_ENCRYPTION_KEY) to reveal it",
                key_id=key_id,
            )
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return "Secret('***')"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        if self._sealed is not None or other._sealed is not None:
            return self._sealed == other._sealed and self._value == other._value
        return bool(self._value == other._value)

    def __hash__(self) -> int:
        return hash(("wayline.Secret", self._sealed.data if self._sealed is not None else self._value))

    def __reduce__(self) -> Any:
        # Pickling (multiprocessing, caches) would carry the plaintext out of wayline's hands.
        raise TypeError("a Secret cannot be pickled; pass secret.reveal() where it must leave the process")


def key_id_of(data: Any) -> str:
    """The key id in a sealed extension's data (``MAGIC``, length, id, nonce, ciphertext)."""
    raw = bytes(data)
    n = raw[len(MAGIC)] if len(raw) > len(MAGIC) else 0
    return raw[len(MAGIC) + 1 : len(MAGIC) + 1 + n].decode("utf-8", "replace")


class Unsealed(Exception):
    """A store met a plaintext `Secret` in what it was about to write: it seals and retries.
    Not one of the encode errors (`ENCODE_ERRORS`): nothing turns it into a `PayloadError`."""


class SealedPayload:
    """A value stored encrypted (``encrypt_payloads=True``) not opened yet: what a decoder
    gives for it; the store reading it opens it with its keys, or says which key it needs."""

    __slots__ = ("ext",)

    def __init__(self, ext: msgspec.msgpack.Ext) -> None:
        self.ext = ext

    def __repr__(self) -> str:
        return f"<encrypted value, key {key_id_of(self.ext.data)!r}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SealedPayload) and other.ext == self.ext

    def __hash__(self) -> int:
        return hash(self.ext.data)


def transient_hook(value: Any) -> Any:
    """The transient encoder's hook: a `Secret` as an in-memory extension."""
    if isinstance(value, Secret):
        if value._sealed is not None:
            return value._sealed
        return msgspec.msgpack.Ext(PLAIN, _inner.encode(value._value))
    if isinstance(value, SealedPayload):
        return value.ext
    raise TypeError(f"Encoding objects of type {type(value).__name__} is unsupported")


def store_hook(value: Any) -> Any:
    """The store encoder's hook: a sealed secret as its ciphertext; a plaintext one is refused
    (`Unsealed`) so that the store seals it first."""
    if isinstance(value, Secret):
        if value._sealed is not None:
            return value._sealed
        raise Unsealed
    if isinstance(value, SealedPayload):
        return value.ext
    raise TypeError(f"Encoding objects of type {type(value).__name__} is unsupported")


def ext_hook(code: int, data: memoryview) -> Any:
    """Every decoder's hook for wayline's extensions."""
    if code == PLAIN:
        return Secret(_inner_decoder.decode(data))
    if code == SEALED:
        return Secret._from_sealed(msgspec.msgpack.Ext(code, bytes(data)))
    if code == PAYLOAD:
        return SealedPayload(msgspec.msgpack.Ext(code, bytes(data)))
    return msgspec.msgpack.Ext(code, bytes(data))


def dec_hook(type_: Any, obj: Any) -> Any:
    """``msgspec.convert``'s hook: a `Secret` stays itself where ``Secret[...]`` is declared."""
    origin = getattr(type_, "__origin__", type_)
    if origin is Secret:
        if isinstance(obj, Secret):
            return obj
        raise TypeError(f"expected a Secret, got {type(obj).__name__}")
    if type_ is object:  # as msgspec does without a hook: anything is an object
        return obj
    raise TypeError(f"unsupported type {type_!r}")
