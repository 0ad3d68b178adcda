"""Key rotation for a runtime: `rotate_keys`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._errors import InvalidArgumentError
from ..persistence import KeyRotation
from ._runtime import Runtime


async def rotate_keys(
    rt: Runtime, *, batch_size: int = 100, progress: Callable[[KeyRotation], Any] | None = None
) -> KeyRotation:
    """Re-encrypt every `Secret` (and, with ``encrypt_payloads``, every value) stored in
    ``rt``'s database with its current key: the ``encryption_key`` it was opened with.

    Open the runtime with the new key as ``encryption_key`` and the old ones in
    ``encryption_keys``; call this (or ``wayline keys rotate``); once it reports nothing
    ``failed``, the old keys may be dropped. It works in batches of ``batch_size`` runs, one
    short write transaction each, while runs go on: a run that checkpoints in the meantime
    writes with the new key anyway, and the row it wrote is left alone.

    Raises:
        EncryptionKeyError: the runtime has no key.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidArgumentError("rotate_keys", "batch_size", f"must be an int >= 1, got {batch_size!r}")
    store: Any = rt.store
    rotate = getattr(store, "rotate_keys", None)
    if rotate is None:
        raise InvalidArgumentError("rotate_keys", "rt", f"its store {type(store).__name__} does not encrypt")
    result: KeyRotation = await rotate(batch_size=batch_size, progress=progress)
    return result
