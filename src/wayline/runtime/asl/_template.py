"""Payload templates: Parameters/ResultSelector/ItemSelector/Assign (JSONPath, keys ending
in ``.$``) and Arguments/Output/Assign (JSONata, ``{% %}`` strings), compiled to closures."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ._budget import ExpressionBudget
from ._errors import RUNTIME, StatesError
from ._intrinsics import compile_intrinsic, is_intrinsic
from ._jsonata import compile_expression, is_expression, to_json_text
from ._jsonpath import PathNotFound, compile_path

__all__ = ("JsonataTemplate", "PathTemplate", "compile_jsonata", "compile_jsonpath_template")

Lookup = Callable[[str], Any]
# (data, context, lookup) -> value
PathTemplate = Callable[[Any, Any, Lookup], Any]
# (bindings, budget) -> value; awaited, since a slow expression is evaluated off the event loop
JsonataTemplate = Callable[[Mapping[str, Any], ExpressionBudget], Awaitable[Any]]


def _const(value: Any) -> PathTemplate:
    return lambda data, context, lookup: value


def compile_dynamic(text: str, field: str, problems: list[str], where: str) -> PathTemplate:
    """Compile the string value of a ``.$`` key: a path or an intrinsic call."""
    if is_intrinsic(text):
        try:
            call = compile_intrinsic(text)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            return _const(None)
        return call.evaluate
    if not text.startswith("$"):
        problems.append(f"{where}: the value of {field!r} must be a JSONPath or an intrinsic function, got {text!r}")
        return _const(None)
    try:
        path = compile_path(text)
    except ValueError as exc:
        problems.append(f"{where}: {exc}")
        return _const(None)

    def get(data: Any, context: Any, lookup: Lookup) -> Any:
        try:
            return path.get(data, context, lookup)
        except PathNotFound:
            doc = context if path.root == "$$" else data
            raise StatesError(
                RUNTIME,
                f"The JSONPath '{text}' specified for the field '{field}' could not be found "
                f"in the input '{to_json_text(doc)}'",
            ) from None

    return get


def compile_jsonpath_template(value: Any, problems: list[str], where: str) -> PathTemplate:
    """Compile a JSONPath payload template (the value of Parameters and friends).

    Problems (bad paths, bad intrinsic calls) are appended to ``problems`` with ``where``
    extended by the key, rather than raised, so validation reports them all.
    """
    if type(value) is dict:
        parts: list[tuple[str, bool, Any]] = []
        dynamic = False
        for key, sub in value.items():
            sub_where = f"{where}/{key}"
            if key.endswith(".$") and len(key) > 2:
                if type(sub) is not str:
                    problems.append(f"{sub_where}: the value of a '.$' field must be a string")
                    continue
                parts.append((key[:-2], True, compile_dynamic(sub, key, problems, sub_where)))
                dynamic = True
            else:
                fn = compile_jsonpath_template(sub, problems, sub_where)
                is_const = getattr(fn, "_const", False)
                parts.append((key, not is_const, fn if not is_const else sub))
                dynamic = dynamic or not is_const
        if not dynamic:
            return _mark_const(value)

        def build(data: Any, context: Any, lookup: Lookup) -> Any:
            out = {}
            for key, dyn, fn in parts:
                out[key] = fn(data, context, lookup) if dyn else fn
            return out

        return build
    if type(value) is list:
        fns = [compile_jsonpath_template(v, problems, f"{where}/{i}") for i, v in enumerate(value)]
        if all(getattr(f, "_const", False) for f in fns):
            return _mark_const(value)
        return lambda data, context, lookup: [f(data, context, lookup) for f in fns]
    return _mark_const(value)


def _mark_const(value: Any) -> PathTemplate:
    fn = _const(value)
    fn._const = True  # type: ignore[attr-defined]
    return fn


def compile_jsonata(value: Any, problems: list[str], field: str, where: str = "") -> JsonataTemplate:
    """Compile a JSONata-language field value: ``{% %}`` strings anywhere inside it.

    ``field`` is the name AWS uses in error causes, e.g. ``Output/result``; ``where`` is
    the state's path in the definition, used for validation problems.
    """
    if is_expression(value):
        try:
            expr = compile_expression(value)
        except ValueError as exc:
            problems.append(f"{where}/{field}: {exc}")
            return _ata_const(None)

        async def evaluate(b: Mapping[str, Any], budget: ExpressionBudget) -> Any:
            return await expr.evaluate(b, field, budget)

        return evaluate
    if type(value) is dict:
        parts = [(k, compile_jsonata(v, problems, f"{field}/{k}", where)) for k, v in value.items()]
        if not _has_expression(value):
            return _ata_const(value)

        async def build(b: Mapping[str, Any], budget: ExpressionBudget) -> Any:
            return {k: await fn(b, budget) for k, fn in parts}

        return build
    if type(value) is list:
        items = [compile_jsonata(v, problems, f"{field}/{i}", where) for i, v in enumerate(value)]
        if not _has_expression(value):
            return _ata_const(value)

        async def build_list(b: Mapping[str, Any], budget: ExpressionBudget) -> Any:
            return [await fn(b, budget) for fn in items]

        return build_list
    return _ata_const(value)


def _ata_const(value: Any) -> JsonataTemplate:
    async def const(b: Mapping[str, Any], budget: ExpressionBudget) -> Any:
        return value

    return const


def _has_expression(value: Any) -> bool:
    if is_expression(value):
        return True
    if type(value) is dict:
        return any(_has_expression(v) for v in value.values())
    if type(value) is list:
        return any(_has_expression(v) for v in value)
    return False
