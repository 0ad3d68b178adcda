"""Errors about encrypted values: `Secret`s and ``encrypt_payloads=True``."""

from __future__ import annotations

from ._base import WaylineError


class EncryptionKeyError(WaylineError, ValueError):
    """An encryption key that cannot be used, or a stored value whose key the runtime lacks.

    Raised at ``open_runtime`` for a key that is not 32 bytes (raw, hex or base64), and when a
    run holds a value encrypted with a key id the runtime was not given (or a `Secret` is
    stored, or revealed, with no key at all). Nothing stored is changed: open the runtime with
    the key and the run reads as before.
    """

    def __init__(self, problem: str, *, run_id: str | None = None, key_id: str | None = None) -> None:
        self.run_id = run_id
        self.key_id = key_id
        where = f"run {run_id!r}: " if run_id else ""
        super().__init__(f"{where}{problem}")


class SecretDecryptError(WaylineError):
    """A stored ciphertext that does not open with its key: altered in the database, copied
    from another run or field, or encrypted with a different key under the same id. The row is
    left as it was."""

    def __init__(self, run_id: str | None, field: str, key_id: str, detail: str) -> None:
        self.run_id = run_id
        self.field = field
        self.key_id = key_id
        where = f"run {run_id!r}" if run_id else "a stored value"
        super().__init__(
            f"{where}: the encrypted value at {field} (key {key_id!r}) cannot be decrypted: {detail}. "
            "Nothing was changed; if the key with that id is not the one that encrypted it, open the "
            "runtime with the right key (open_runtime(encryption_keys=...)); otherwise the row was "
            "altered or copied from another run or field and must be restored from a backup"
        )
