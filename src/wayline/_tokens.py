"""Callback tokens: what a run hands out so that something outside can complete its wait.

A token is ``wlcb1.<run id, base64url>.<192 random bits, base64url>``. The run id inside lets
``rt.complete_callback`` find the run without an index; the random part makes it unguessable.
Only the token's SHA-256 digest is ever stored (in the run's waits and history), so a copy
of the database cannot be used to complete anyone's callbacks.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets

_PREFIX = "wlcb1"


def digest_token(token: str) -> str:
    """The stored form of a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(run_id: str) -> tuple[str, str]:
    """A fresh token for ``run_id`` and its digest."""
    rid = base64.urlsafe_b64encode(run_id.encode()).rstrip(b"=").decode()
    token = f"{_PREFIX}.{rid}.{secrets.token_urlsafe(24)}"
    return token, digest_token(token)


def token_run_id(token: str) -> str | None:
    """The run a token belongs to, or None if ``token`` is not a wayline callback token."""
    if not isinstance(token, str):
        return None
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != _PREFIX or len(parts[2]) < 22:
        return None
    rid = parts[1]
    try:
        return base64.urlsafe_b64decode(rid + "=" * (-len(rid) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
