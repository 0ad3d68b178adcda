"""No silent coercion: a workflow's input reaches its body as it was passed, or is refused.

A run's input is stored as msgpack and decoded for the body by its annotation (msgspec's
typed decode, as `wayline.runtime.run` does when the body starts). What msgspec decodes back
exactly is accepted: JSON-like data, Structs and dataclasses, aware datetimes, and `date`,
`datetime`, `Decimal`, `UUID`, enums... wherever the annotation declares them. Anything else
(a `Decimal` in a plain ``dict``, a naive `datetime` where nothing is declared) would reach
the body as a string; it is refused at ``rt.start`` with a `PayloadError` that names where in
the input it is and how to fix it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import msgspec

from .._errors import PayloadError
from ..persistence import encode, secret_dec_hook, secret_ext_hook

_SCALARS = (bool, int, float, str, type(None))
_SCALAR_SET = frozenset(_SCALARS)
_SEQUENCES = (list, tuple)


def check_input(workflow: str, value: Any, input_type: Any, run_id: str | None = None) -> None:
    """Raise `PayloadError` unless ``value`` comes back to the body of ``workflow`` as it is.

    Raises:
        PayloadError: ``value`` is not storable, does not match the annotation, or would come
            back as something else (the message names the place inside ``input``).
    """
    if input_type is Any and _plain(value):
        return  # JSON-like data with nothing declared comes back as it is (what cannot be
        # encoded at all, such as an int of 100 bits, is refused where the run is stored)
    what = f"input of workflow {workflow!r}"
    data = encode(value, what=what, run_id=run_id)
    try:
        back = _decoder(input_type).decode(data)
    except msgspec.ValidationError as exc:
        problem = f"it does not match the workflow's annotation {_name(input_type)}: {exc}"
        raise PayloadError(what, problem, run_id=run_id) from None
    if back == value and _plain(value):
        return  # JSON-like data that came back equal (compared in C): the common case
    where = _difference(value, back, "input")
    if where is not None:
        path, was, became = where
        raise PayloadError(
            what,
            f"{path} is a {type(was).__name__} ({_short(was)}), and the workflow would receive it as a "
            f"{type(became).__name__} ({_short(became)}); declare {type(was).__name__} there in the workflow's "
            f"input annotation (a Struct or dataclass field, or e.g. dict[str, {type(was).__name__}]) so that it "
            f"is decoded back exactly, or pass a {type(became).__name__}",
            run_id=run_id,
        )


#: A decoder per annotation, built once: a typed decode of the stored bytes is what the body
#: gets (``strict=False``, as `wayline.runtime.run` shapes a stored input), and building the
#: type's decoding plan on every ``rt.start`` would cost more than the decode.
_decoders: dict[Any, msgspec.msgpack.Decoder[Any]] = {}


def _decoder(input_type: Any) -> msgspec.msgpack.Decoder[Any]:
    try:
        return _decoders[input_type]
    except KeyError:
        pass
    except TypeError:  # an unhashable annotation: not cached
        return msgspec.msgpack.Decoder(input_type, strict=False, ext_hook=secret_ext_hook, dec_hook=secret_dec_hook)
    if len(_decoders) > 1024:
        _decoders.clear()
    decoder = _decoders[input_type] = msgspec.msgpack.Decoder(
        input_type, strict=False, ext_hook=secret_ext_hook, dec_hook=secret_dec_hook
    )
    return decoder


def _plain(value: Any) -> bool:
    """Only dicts, lists and scalars of exactly the builtin types (no subclasses: an IntEnum
    equals its int, but would come back as the int). A loop, not recursion: it runs on every
    ``rt.start``."""
    scalars = _SCALAR_SET
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            for key, inner in item.items():
                if type(key) is not str:
                    return False
                if type(inner) not in scalars:
                    stack.append(inner)
        elif kind is list:
            stack.extend(inner for inner in item if type(inner) not in scalars)
        elif kind not in scalars:
            return False
    return True


def _difference(was: Any, back: Any, path: str) -> tuple[str, Any, Any] | None:
    """The first place where ``back`` is not ``was`` as data: (path, value, what came back).

    The path is built only for a difference: this walks every input ``rt.start`` is given.
    """
    kind = type(was)
    if kind is type(back):  # the common case, JSON-like data: exact types, no ABC checks
        if kind in _SCALARS:
            return None if was == back or was != was else (path, was, back)  # NaN != NaN
        if kind is dict:
            for key, value in was.items():
                if key in back:
                    other = back[key]
                    if type(value) is type(other) and type(value) in _SCALARS and value == other:
                        continue
                    found = _difference(value, other, f"{path}[{key!r}]")
                    if found is not None:
                        return found
            return None
        if kind is list:
            if len(was) != len(back):
                return (path, was, back)
            for i, (a, b) in enumerate(zip(was, back, strict=True)):
                if type(a) is type(b) and type(a) in _SCALARS and a == b:
                    continue
                found = _difference(a, b, f"{path}[{i}]")
                if found is not None:
                    return found
            return None
    if isinstance(was, bool) or isinstance(back, bool):
        return None if type(was) is type(back) and was == back else (path, was, back)
    if isinstance(was, int | float) and isinstance(back, int | float):
        return None if was == back else (path, was, back)
    if isinstance(was, bytes | bytearray | memoryview) and isinstance(back, bytes | bytearray | memoryview):
        return None if bytes(was) == bytes(back) else (path, was, back)
    fields = _fields(was)
    if fields is not None:
        if type(back) is type(was):
            return None if was == back else (path, was, back)
        if not isinstance(back, Mapping):
            return (path, was, back)
        return _mapping_difference(fields, back, path)
    if isinstance(was, Mapping):
        if not isinstance(back, Mapping):
            return (path, was, back)
        return _mapping_difference(was, back, path)
    if isinstance(was, _SEQUENCES):
        if not isinstance(back, _SEQUENCES) or len(was) != len(back):
            return (path, was, back)
        for i, (a, b) in enumerate(zip(was, back, strict=True)):
            found = _difference(a, b, f"{path}[{i}]")
            if found is not None:
                return found
        return None
    if isinstance(was, set | frozenset):
        same = isinstance(back, set | frozenset) and was == back
        return None if same else (path, was, back)
    # datetimes, dates, Decimals, UUIDs, enums...: exactly what was passed, or refused.
    return None if type(was) is type(back) and was == back else (path, was, back)


def _mapping_difference(was: Mapping[Any, Any], back: Mapping[Any, Any], path: str) -> tuple[str, Any, Any] | None:
    for key, value in was.items():
        if key not in back:
            continue  # a field left out because it holds its default
        found = _difference(value, back[key], f"{path}[{key!r}]")
        if found is not None:
            return found
    return None


def _fields(value: Any) -> dict[str, Any] | None:
    """A Struct's or a dataclass's fields, by name (None for other values)."""
    names = getattr(type(value), "__struct_fields__", None)
    if names is not None:
        return {name: getattr(value, name) for name in names}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    return None


def _name(type_: Any) -> str:
    return getattr(type_, "__name__", None) or repr(type_)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
