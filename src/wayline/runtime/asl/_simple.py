"""The simple states: Pass, Succeed, Fail, Choice and Wait."""

from __future__ import annotations

from typing import Any

from . import _errors as E
from ._errors import StatesError
from ._interpreter import (
    NO_RESULT,
    Execution,
    Frame,
    ata_finish,
    evaluation_error,
    path_effective_input,
    path_finish,
    runtime_error,
    unlocated,
)
from ._jsonata import to_json_text
from ._jsonpath import PathNotFound
from ._states import State

__all__ = ("resolve_number", "run_choice", "run_fail", "run_pass", "run_succeed", "run_wait")


async def run_pass(ex: Execution, frame: Frame, st: State, raw: Any) -> tuple[Any, str | None]:
    ctx = ex.context(st)
    try:
        if st.jsonata:
            out = await ata_finish(ex, frame, st, raw, NO_RESULT, ctx, raw)
        else:
            data = path_effective_input(ex, frame, st, raw, ctx)
            result = st.raw.get("Result", data)
            out = path_finish(ex, frame, st, raw, result, ctx)
    except StatesError as err:
        raise unlocated(err) from None
    ex.check_size(st, out)
    ex.emit("PassStateExited", {"name": st.name, "output": out})
    return out, st.next


async def run_succeed(ex: Execution, frame: Frame, st: State, raw: Any) -> tuple[Any, None]:
    ctx = ex.context(st)
    try:
        if st.jsonata:
            out = await ata_finish(ex, frame, st, raw, NO_RESULT, ctx, raw)
        else:
            out = ex.path(st.output_path, ex.path(st.input_path, raw, ctx, frame), ctx, frame)
    except StatesError as err:
        raise unlocated(err) from None
    ex.emit("SucceedStateExited", {"name": st.name, "output": out})
    return out, None


async def run_fail(ex: Execution, frame: Frame, st: State, raw: Any) -> tuple[Any, None]:
    ctx = ex.context(st)

    async def value(spec: tuple[str, Any] | None) -> Any:
        if spec is None:
            return None
        kind, v = spec
        if kind == "lit":
            return v
        if kind == "ata":
            return await v(ex.bindings(frame, {"input": raw, "context": ctx}), ex.budget)
        return v(raw, ctx, frame.scope.lookup)

    try:
        error, cause = await value(st.error), await value(st.cause)
    except StatesError as exc:
        raise unlocated(exc) from None
    raise StatesError(error, cause)


async def run_choice(ex: Execution, frame: Frame, st: State, raw: Any) -> tuple[Any, str]:
    ctx = ex.context(st)
    try:
        if st.jsonata:
            b = ex.bindings(frame, {"input": raw, "context": ctx})
            for cond, nxt, output, assign in st.choices:
                if await cond(b, ex.budget):
                    new_vars = await assign(b, ex.budget) if assign else None
                    # A matched rule uses its own Output; the state's Output and Assign
                    # belong to the Default branch.
                    out = await output(b, ex.budget) if output else raw
                    ex.assign(frame, new_vars)
                    return _choice_exit(ex, st, out, nxt)
            if st.default is None:
                raise _no_choice(st)
            new_vars = await st.assign_ata(b, ex.budget) if st.assign_ata else None
            out = await st.output(b, ex.budget) if st.output else raw
            ex.assign(frame, new_vars)
            return _choice_exit(ex, st, out, st.default)
        data = ex.path(st.input_path, raw, ctx, frame)
        lookup = frame.scope.lookup
        for rule, nxt, assign, _ in st.choices:
            if rule(data, ctx, lookup):
                new_vars = assign(data, ctx, lookup) if assign else None
                out = ex.path(st.output_path, data, ctx, frame)
                ex.assign(frame, new_vars)
                return _choice_exit(ex, st, out, nxt)
        if st.default is None:
            raise _no_choice(st)
        new_vars = st.assign_path(data, ctx, lookup) if st.assign_path else None
        out = ex.path(st.output_path, data, ctx, frame)
        ex.assign(frame, new_vars)
        return _choice_exit(ex, st, out, st.default)
    except StatesError as err:
        raise unlocated(err) from None


def _no_choice(st: State) -> StatesError:
    return evaluation_error(
        E.NO_CHOICE_MATCHED,
        f"No Matches! The state '{st.name}' could not find a Choice rule that matched and has no Default.",
    )


def _choice_exit(ex: Execution, st: State, out: Any, nxt: str) -> tuple[Any, str]:
    ex.emit("ChoiceStateExited", {"name": st.name, "output": out})
    return out, nxt


async def resolve_number(
    ex: Execution,
    frame: Frame,
    st: State,
    spec: Any,
    field: str,
    data: Any,
    ctx: Any,
    raw: Any,
    kind: str = "integer",
) -> Any:
    """Evaluate a literal / ``*Path`` / JSONata numeric field (MaxConcurrency and friends)."""
    if spec is None:
        return None
    how, v = spec
    if how == "lit":
        return v
    if how == "ata":
        value = await v.evaluate(ex.bindings(frame, {"input": raw, "context": ctx}), field, ex.budget)
        ok = type(value) is int or (type(value) is float and (kind == "float" or value.is_integer()))
        if not ok:
            raise v.unexpected_type(field, "number" if kind == "float" else "integer", value)
        return value
    try:
        value = v.get(data, ctx, frame.scope.lookup)
    except PathNotFound as exc:
        raise runtime_error(f"Invalid path '{v.text}' : No results for path: {exc.path}") from None
    if type(value) is str:
        # AWS reads numbers given as strings ("1") here, as recorded executions show.
        try:
            value = int(value) if kind == "integer" else float(value)
            if type(value) is float and value.is_integer():
                value = int(value)
        except ValueError:
            pass
    ok = type(value) is int or (kind == "float" and type(value) is float)
    if not ok:
        shown = value if type(value) is str else to_json_text(value)
        raise runtime_error(f'The {field}Path field refers to value "{shown}" which is not a valid {kind}: {v.text}')
    return value


async def run_wait(ex: Execution, frame: Frame, st: State, raw: Any) -> tuple[Any, str | None]:
    ctx = ex.context(st)
    rec = frame.rec
    try:
        data = raw if st.jsonata else ex.path(st.input_path, raw, ctx, frame)
        if "wake" not in rec:
            rec["wake"] = await _wake_time(ex, frame, st, data, raw, ctx)
        if st.jsonata:
            out = await ata_finish(ex, frame, st, raw, NO_RESULT, ctx, raw)
        else:
            new_vars = st.assign_path(data, ctx, frame.scope.lookup) if st.assign_path else None
            out = ex.path(st.output_path, data, ctx, frame)
    except StatesError as err:
        raise unlocated(err) from None
    if rec["wake"] > ex.host.now():
        over = ex.waiting("wait", frame, st, rec["wake"])
        await ex.suspend_point()
        await ex.sleep_until(rec["wake"])
        if over is not None:
            over()
    if not st.jsonata:
        ex.assign(frame, new_vars)
    ex.emit("WaitStateExited", {"name": st.name, "output": out})
    return out, st.next


def _shown(value: Any) -> str:
    return value if type(value) is str else to_json_text(value)


async def _wake_time(ex: Execution, frame: Frame, st: State, data: Any, raw: Any, ctx: Any) -> float:
    from ._choice import parse_wait_timestamp

    assert st.wait is not None
    kind, (how, v) = st.wait
    field = {
        "seconds": "Seconds",
        "secondspath": "SecondsPath",
        "timestamp": "Timestamp",
        "timestamppath": "TimestampPath",
    }[kind]
    if how == "lit":
        value = v
    elif how == "ata":
        value = await v.evaluate(ex.bindings(frame, {"input": raw, "context": ctx}), field, ex.budget)
    else:
        try:
            value = v.get(data, ctx, frame.scope.lookup)
        except PathNotFound:
            if kind == "secondspath":
                raise runtime_error(f"The SecondsPath parameter does not reference an input value: {v.text}") from None
            raise runtime_error(f"The TimestampPath parameter does not reference an input value: {v.text}") from None
    source = v.text if how == "path" else (v.source if how == "ata" else value)
    if kind.startswith("seconds"):
        if type(value) is float and how == "ata" and value.is_integer():
            value = int(value)
        if type(value) is not int:
            if how == "ata":
                raise v.unexpected_type(field, "integer", value)
            raise runtime_error(f"The {field} parameter cannot be parsed as a long value: {source} == {_shown(value)}")
        if value < 0:
            raise runtime_error(f"The {field} parameter references a negative value: {source} == {value}")
        return ex.host.now() + value
    ts = parse_wait_timestamp(value)
    if ts is None:
        raise runtime_error(
            f"The {field} parameter does not reference a valid ISO-8601 extended offset "
            f"date-time format string: {source} == {_shown(value)}"
        )
    return ts
