"""Parallel and Map states: branches and iterations as child frames.

Progress lives in the state's snapshot record under ``"sub"``: ``done`` maps an index to
its result and ``running`` maps an index to the record of its frame, so a resumed run skips
finished items and continues the others where they stopped.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import msgspec

from . import _errors as E
from ._errors import StatesError
from ._interpreter import (
    Execution,
    Frame,
    Scope,
    finish_state,
    handle_failure,
    path_effective_input,
    runtime_error,
    unlocated,
)
from ._jsonata import to_json_text
from ._simple import resolve_number
from ._states import Program, State

__all__ = ("run_map", "run_parallel")

_encode = msgspec.json.encode


async def _with_retry(
    ex: Execution,
    frame: Frame,
    st: State,
    raw: Any,
    body: Callable[[dict[str, Any]], Awaitable[Any]],
) -> tuple[Any, str | None]:
    rec = frame.rec
    while True:
        retries = rec.get("retries")
        ctx = ex.context(st, sum(retries) if retries else 0)
        try:
            output = await body(ctx)
        except StatesError as err:
            ex.emit(st.type + "StateFailed", {"error": err.error, "cause": err.cause})
            # A retry or a catch starts over; a final failure keeps the finished items so
            # a redrive runs only the others, as AWS redrives a Map.
            progress = rec.pop("sub", None)
            located = ex.located(err, st, frame.entered)
            try:
                outcome = await handle_failure(ex, frame, st, raw, located, ctx)
            except StatesError:
                if progress is not None:
                    rec["sub"] = progress
                raise
            if outcome is None:
                continue
            ex.emit(st.type + "StateExited", {"name": st.name, "output": outcome[0]})
            return outcome
        ex.emit(st.type + "StateExited", {"name": st.name, "output": output})
        return output, st.next


async def _run_children(
    ex: Execution,
    frame: Frame,
    count: int,
    concurrency: int,
    run_one: Callable[[int, dict[str, Any]], Awaitable[Any]],
    tolerate: Callable[[int], bool] | None = None,
    *,
    labels: str = "",
) -> list[Any]:
    """Run children ``0..count-1`` with at most ``concurrency`` at once (0 = no limit).

    A failure cancels the others and is raised, unless ``tolerate(failures)`` accepts it,
    in which case the child's error output stands as its result. ``.sync`` child runs the
    cancelled ones were waiting for (their frames' labels start with ``labels``) are stopped.
    """
    sub = frame.rec.setdefault("sub", {"done": {}, "running": {}, "failed": 0})
    done: dict[str, Any] = sub["done"]
    todo = [i for i in range(count) if str(i) not in done]
    first_error: list[StatesError] = []
    pending = [0]  # effectful items finished since the last checkpoint

    async def one(i: int) -> None:
        key = str(i)
        before = ex.effects
        try:
            result = await run_one(i, sub["running"])
        except StatesError as err:
            sub["running"].pop(key, None)
            sub["failed"] += 1
            if tolerate is not None and tolerate(sub["failed"]):
                done[key] = {"Error": err.error, "Cause": err.cause}
                return
            if not first_error:
                first_error.append(err)
            raise _Stop from None
        sub["running"].pop(key, None)
        done[key] = result
        if ex.effects != before and ex.standard:
            # Only items that did something outside the process need a checkpoint: pure
            # items are cheaper to recompute after a crash than to persist one by one.
            # Each checkpoint writes every result so far, so checkpointing after every
            # item would cost O(n^2); waiting for the results to grow by 1/16 keeps the
            # total linear while a crash re-runs at most that fraction of the items.
            pending[0] += 1
            if pending[0] * 16 >= len(done):
                pending[0] = 0
                await ex.checkpoint()

    if todo:
        limit = concurrency if 0 < concurrency < len(todo) else len(todo)
        if limit == 1:
            try:
                for i in todo:
                    await one(i)
            except _Stop:
                pass
        else:
            queue = iter(todo)

            async def worker() -> None:
                for i in queue:
                    await one(i)

            try:
                async with anyio.create_task_group() as tg:
                    for _ in range(min(limit, 1000)):
                        tg.start_soon(worker)
            except BaseExceptionGroup as group:
                # _Stop only says "a sibling failed". Anything else (a crash, the runtime
                # evicting the run) is re-raised bare, so callers need not unwrap groups.
                _, rest = group.split(_Stop)
                if rest is not None:
                    raise _first_leaf(rest) from None
        if first_error:
            if labels:
                await _stop_abandoned_children(ex, labels)
            raise first_error[0]
    return [done[str(i)] for i in range(count)]


async def _stop_abandoned_children(ex: Execution, labels: str) -> None:
    names = [name for name, label in ex.waiting_children.items() if label.startswith(labels)]
    for name in names:
        del ex.waiting_children[name]
    if names:
        await ex.host.stop_children(names, "a sibling branch or item failed")


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


class _Stop(Exception):
    pass


def _child_frame(
    ex: Execution,
    frame: Frame,
    program: Program,
    running: dict[str, Any],
    key: str,
    child_input: Any,
    label: str,
) -> Frame:
    rec = running.get(key)
    if rec is None:
        rec = running[key] = {"state": program.start, "input": child_input, "vars": {}}
    return Frame(program, rec, Scope(rec["vars"], frame.scope), label)


# ---------------------------------------------------------------------- Parallel


async def run_parallel(ex: Execution, frame: Frame, st: State, raw: Any) -> tuple[Any, str | None]:
    """Run a Parallel state: every branch on the same input, results in branch order."""

    async def body(ctx: dict[str, Any]) -> Any:
        try:
            if st.jsonata:
                b = ex.bindings(frame, {"input": raw, "context": ctx})
                payload = await st.arguments(b, ex.budget) if st.arguments else raw
            else:
                payload = path_effective_input(ex, frame, st, raw, ctx)
        except StatesError as err:
            raise unlocated(err) from None
        ex.emit("ParallelStateStarted")

        async def branch(i: int, running: dict[str, Any]) -> Any:
            child = _child_frame(ex, frame, st.branches[i], running, str(i), payload, f"{frame.label}{st.name}/{i}/")
            return await ex.run_frame(child)

        results = await _run_children(ex, frame, len(st.branches), 0, branch, labels=f"{frame.label}{st.name}/")
        ex.emit("ParallelStateSucceeded")
        return await finish_state(ex, frame, st, raw, results, ctx)

    return await _with_retry(ex, frame, st, raw, body)


# ---------------------------------------------------------------------- Map


async def run_map(ex: Execution, frame: Frame, st: State, raw: Any) -> tuple[Any, str | None]:
    """Run a Map state over its items (inline frames or distributed child runs)."""

    async def body(ctx: dict[str, Any]) -> Any:
        try:
            # AWS evaluates MaxConcurrency before the items, tolerances after them.
            concurrency = await _concurrency(
                ex, frame, st, ex.path(st.input_path, raw, ctx, frame) if not st.jsonata else raw, ctx, raw
            )
            if st.reader is not None:
                data, items = await _read_items(ex, frame, st, raw, ctx)
            else:
                data, items = await _items(ex, frame, st, raw, ctx)
            inputs = await _batches(ex, frame, st, items, data, ctx, raw)
            tolerate = await _tolerance(ex, frame, st, data, ctx, raw, len(inputs))
        except StatesError as err:
            raise unlocated(err) from None
        count = len(inputs)
        ex.emit("MapStateStarted", {"length": count})
        children = ""
        if st.distributed:
            ex.emit("MapRunStarted")
            # Items run as child runs named "<prefix>-<index>". A retried Map runs its items
            # again, so the attempt is part of the prefix; the prefix (its visit) is durable
            # before any child starts, so a restart finds the same children.
            retries = frame.rec.get("retries")
            children = ex.child_name(frame, st, str(sum(retries) if retries else 0))
            await ex.suspend_point()
        selector = _selector(ex, frame, st, data, ctx, raw)

        async def item(i: int, running: dict[str, Any]) -> Any:
            # A distributed Map's items are child executions with their own histories; the
            # parent's history (and so its event ids) only shows the Map Run.
            inline = not st.distributed
            if inline:
                ex.emit("MapIterationStarted", {"index": i, "name": st.name})
            try:
                value = await selector(i, inputs[i])
            except StatesError as err:
                raise ex.located(unlocated(err), st, frame.entered) from None
            try:
                if not inline:
                    ex.effects += 1
                    return await ex.host.start_child(ex.machine.item_machine(st), value, name=f"{children}-{i}")
                assert st.processor is not None
                child = _child_frame(ex, frame, st.processor, running, str(i), value, f"{frame.label}{st.name}/{i}/")
                result = await ex.run_frame(child)
            except StatesError:
                if inline:
                    ex.emit("MapIterationFailed", {"index": i, "name": st.name})
                raise
            ex.emit("MapIterationSucceeded", {"index": i, "name": st.name})
            return result

        try:
            labels = f"{frame.label}{st.name}/"
            results = await _run_children(ex, frame, count, concurrency, item, tolerate, labels=labels)
        except StatesError:
            if st.distributed:
                # The items still running are abandoned: stop their child runs (before the
                # failure is recorded, so a crash here stops them again after the restart).
                done = frame.rec.get("sub", {}).get("done", {})
                left = [f"{children}-{i}" for i in range(count) if str(i) not in done]
                await ex.host.stop_children(left, f"the Map Run of state {st.name!r} failed")
                ex.emit("MapRunFailed")
                raise StatesError(
                    E.EXCEED_TOLERATED_FAILURE_THRESHOLD, "The specified tolerance threshold was exceeded"
                ) from None
            raise
        if st.distributed:
            ex.emit("MapRunSucceeded")
        ex.emit("MapStateSucceeded")
        return await finish_state(ex, frame, st, raw, results, ctx)

    return await _with_retry(ex, frame, st, raw, body)


async def _items(ex: Execution, frame: Frame, st: State, raw: Any, ctx: Any) -> tuple[Any, list[Any]]:
    if st.jsonata:
        if st.items is None:
            items = raw
            if type(items) is not list:
                raise StatesError(
                    E.QUERY_EVALUATION_ERROR, f"Map state input must be an array but was: {to_json_text(items)}"
                )
            return raw, items
        items = await st.items(ex.bindings(frame, {"input": raw, "context": ctx}), ex.budget)
        if type(items) is not list:
            from ._jsonata import compile_expression, is_expression

            source = st.raw.get("Items")
            if isinstance(source, str) and is_expression(source):
                raise compile_expression(source).unexpected_type("Items", "array", items)
            raise StatesError(
                E.QUERY_EVALUATION_ERROR, f"Map state input must be an array but was: {to_json_text(items)}"
            )
        return raw, items
    data = ex.path(st.input_path, raw, ctx, frame)
    items = ex.path(st.items_path, data, ctx, frame)
    if type(items) is not list:
        raise StatesError(E.QUERY_EVALUATION_ERROR, f"Map state input must be an array but was: {to_json_text(items)}")
    return data, items


async def _read_items(ex: Execution, frame: Frame, st: State, raw: Any, ctx: Any) -> tuple[Any, list[Any]]:
    """Fetch the items through the host, as the ItemReader's resource describes."""
    resource, args, max_items = st.reader
    if st.jsonata:
        data = raw
        payload = await args(ex.bindings(frame, {"input": raw, "context": ctx}), ex.budget)
    else:
        data = ex.path(st.input_path, raw, ctx, frame)
        payload = args(data, ctx, frame.scope.lookup)
    ex.effects += 1
    try:
        items = await ex.host.invoke(
            resource,
            payload,
            state=st.name,
            step=ex.step_id(frame, st),
            attempt=0,
            timeout_seconds=None,
            heartbeat_seconds=None,
        )
    except StatesError as err:
        raise StatesError(E.ITEM_READER_FAILED, err.cause or err.error) from None
    if type(items) is not list:
        raise StatesError(E.ITEM_READER_FAILED, f"The item reader returned {to_json_text(items)[:200]}, not an array")
    if max_items:
        items = items[:max_items]
    return data, items


async def _concurrency(ex: Execution, frame: Frame, st: State, data: Any, ctx: Any, raw: Any) -> int:
    value = await resolve_number(ex, frame, st, st.max_concurrency, "MaxConcurrency", data, ctx, raw)
    if value is None:
        return 0
    if value < 0:
        raise runtime_error("MaxConcurrency cannot be negative.")
    return int(value)


async def _tolerance(
    ex: Execution, frame: Frame, st: State, data: Any, ctx: Any, raw: Any, total: int
) -> Callable[[int], bool] | None:
    count = await resolve_number(ex, frame, st, st.tolerated_count, "ToleratedFailureCount", data, ctx, raw)
    pct = await resolve_number(
        ex, frame, st, st.tolerated_percentage, "ToleratedFailurePercentage", data, ctx, raw, kind="float"
    )
    if count is not None and count < 0:
        raise runtime_error("ToleratedFailureCount cannot be negative.")
    if pct is not None and not 0 <= pct <= 100:
        raise runtime_error("ToleratedFailurePercentage must be between 0 and 100.")
    if not st.distributed or (count is None and pct is None):
        return None

    def tolerate(failures: int) -> bool:
        if count is not None and failures <= count:
            return True
        return pct is not None and total > 0 and failures * 100 <= pct * total

    return tolerate


async def _batches(
    ex: Execution, frame: Frame, st: State, items: list[Any], data: Any, ctx: Any, raw: Any
) -> list[Any]:
    batcher = st.batcher
    if batcher is None:
        return items
    max_items = await resolve_number(ex, frame, st, batcher["max_items"], "MaxItemsPerBatch", data, ctx, raw)
    max_bytes = await resolve_number(ex, frame, st, batcher["max_bytes"], "MaxInputBytesPerBatch", data, ctx, raw)
    make_input = batcher["input"]
    if make_input is None:
        batch_input = None
    elif st.jsonata:
        batch_input = await make_input(ex.bindings(frame, {"input": raw, "context": ctx}), ex.budget)
    else:
        batch_input = make_input(data, ctx, frame.scope.lookup)
    limit_items = int(max_items) if max_items else math.inf
    limit_bytes = int(max_bytes) if max_bytes else math.inf
    batches: list[Any] = []
    current: list[Any] = []
    size = 0
    for it in items:
        n = len(_encode(it))
        if current and (len(current) >= limit_items or size + n > limit_bytes):
            batches.append(current)
            current, size = [], 0
        current.append(it)
        size += n
    if current:
        batches.append(current)
    out = []
    for b in batches:
        entry: dict[str, Any] = {"Items": b}
        if batch_input is not None:
            entry = {"BatchInput": batch_input, "Items": b}
        out.append(entry)
    return out


def _selector(
    ex: Execution, frame: Frame, st: State, data: Any, ctx: dict[str, Any], raw: Any
) -> Callable[[int, Any], Awaitable[Any]]:
    sel = st.item_selector

    async def select(i: int, value: Any) -> Any:
        if sel is None:
            return value
        item_ctx = {**ctx, "Map": {"Item": {"Index": i, "Value": value}}}
        if st.jsonata:
            return await sel(ex.bindings(frame, {"input": raw, "context": item_ctx}), ex.budget)
        return sel(data, item_ctx, frame.scope.lookup)

    return select

