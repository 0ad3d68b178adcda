"""How stored values reach a workflow body: shaped by its annotations, as a replay gives them."""

from __future__ import annotations

from typing import Any

import msgspec

from ..._errors import PayloadError
from ...persistence import decode_any, encode, secret_dec_hook

_PLAIN = (int, float, str, bool, bytes, type(None))


def shaped(value: Any, type_: Any) -> Any:
    """A stored value as the code declared it: ``value`` converted into ``type_`` (a Struct, a
    tuple, a dataclass...), or as plain decoded data where nothing is declared."""
    if type_ is Any:
        return value
    try:
        return msgspec.convert(value, type_, strict=False, dec_hook=secret_dec_hook)
    except (msgspec.ValidationError, TypeError):
        return value  # the annotation does not describe what was stored: give the data as is


def as_replayed(value: Any) -> Any:
    """The value as a replay will give it back: what the journal decodes to.

    Results are stored as msgspec data, so a Struct or a tuple comes back from the journal as a
    dict or a list; handing the body the same shape on the first run keeps live runs and
    replays alike. Plain scalars are returned as they are (the common, cheap case).
    """
    if type(value) in _PLAIN:
        return value
    return decode_any(encode(value))


def plain(value: Any) -> bool:
    """A scalar, always storable (checked first: it is nearly every step result)."""
    return type(value) in _PLAIN


def storable(value: Any) -> bool:
    try:
        encode(value)
    except PayloadError:
        return False
    return True
