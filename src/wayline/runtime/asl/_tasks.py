"""The Task state: resources, ``.waitForTaskToken`` callbacks and ``.sync`` child runs."""

from __future__ import annotations

import asyncio
from typing import Any

from ..._tokens import digest_token
from . import _errors as E
from ._errors import StatesError
from ._interpreter import (
    Execution,
    Frame,
    finish_state,
    handle_failure,
    path_effective_input,
    unlocated,
)
from ._jsonata import to_json_text
from ._simple import resolve_number
from ._states import State

__all__ = ("run_task",)

_START_EXECUTION = "arn:aws:states:::states:startExecution"


async def run_task(ex: Execution, frame: Frame, st: State, raw: Any) -> tuple[Any, str | None]:
    """Run a Task state, with its Retry and Catch."""
    rec = frame.rec
    while True:
        retries = rec.get("retries")
        attempt = sum(retries) if retries else 0
        ctx = ex.context(st, attempt)
        try:
            output = await _attempt(ex, frame, st, raw, ctx, attempt)
        except StatesError as err:
            located = ex.located(err, st, frame.entered)
            outcome = await handle_failure(ex, frame, st, raw, located, ctx)
            if outcome is None:
                continue
            ex.emit("TaskStateExited", {"name": st.name, "output": outcome[0]})
            return outcome
        rec.pop("token", None)
        rec.pop("invoked", None)
        ex.emit("TaskStateExited", {"name": st.name, "output": output})
        return output, st.next


async def _attempt(ex: Execution, frame: Frame, st: State, raw: Any, ctx: dict[str, Any], attempt: int) -> Any:
    rec = frame.rec
    resource = st.resource
    callback = resource.endswith(".waitForTaskToken")
    if callback:
        # The snapshot keeps only the token's digest: the token itself lives in memory until
        # the resource has been called with it. A resumed task that had not finished that
        # call makes a new token (as AWS does for each attempt); one that had waits on the digest.
        token = None
        if not rec.get("invoked") or "token" not in rec:
            token = await ex.host.new_task_token(state=st.name, step=ex.step_id(frame, st))
            rec["token"] = digest_token(token)
        ctx = {**ctx, "Task": {"Token": token or rec["token"]}}
    try:
        if st.jsonata:
            b = ex.bindings(frame, {"input": raw, "context": ctx})
            payload = await st.arguments(b, ex.budget) if st.arguments else raw
        else:
            payload = path_effective_input(ex, frame, st, raw, ctx)
        timeout = await resolve_number(ex, frame, st, st.timeout, "TimeoutSeconds", raw, ctx, raw)
        heartbeat = await resolve_number(ex, frame, st, st.heartbeat, "HeartbeatSeconds", raw, ctx, raw)
    except StatesError as err:
        raise unlocated(err) from None
    ex.emit(
        "TaskScheduled",
        {
            "resource": resource,
            # The history is stored: a callback token in it is replaced by its digest.
            "parameters": _redacted(payload, token, rec["token"]) if callback and token else payload,
            "timeoutInSeconds": timeout,
            "heartbeatInSeconds": heartbeat,
        },
    )
    ex.effects += 1

    def invoke() -> Any:
        return ex.host.invoke(
            resource,
            payload,
            state=st.name,
            step=ex.step_id(frame, st),
            attempt=attempt,
            timeout_seconds=timeout,
            heartbeat_seconds=heartbeat,
        )

    try:
        if resource.startswith(_START_EXECUTION):
            result = await _start_execution(ex, frame, st, resource, payload, attempt, timeout)
        elif callback:
            if not rec.get("invoked"):
                ex.emit("TaskStarted", {"resource": resource})
                await invoke()
                rec["invoked"] = True
                await ex.suspend_point()
            result = await ex.host.wait_task_token(rec["token"], timeout_seconds=timeout, heartbeat_seconds=heartbeat)
            # ``wait_task_token`` takes the token's digest (see above).
        else:
            ex.emit("TaskStarted", {"resource": resource})
            result = await invoke()
        # AWS names the resource, not the state, when a task's result is too large:
        # 'lambda' for arn:aws:states:::lambda:invoke, the ARN itself for a legacy Lambda.
        ex.check_size(st, result, _resource_label(resource))
    except StatesError as err:
        kind = "TaskTimedOut" if err.error in (E.TIMEOUT, E.HEARTBEAT_TIMEOUT) else "TaskFailed"
        ex.emit(kind, {"resource": resource, "error": err.error, "cause": err.cause})
        rec.pop("token", None)
        rec.pop("invoked", None)
        raise
    ex.emit("TaskSucceeded", {"resource": resource, "output": result})
    return await finish_state(ex, frame, st, raw, result, ctx)


def _redacted(value: Any, secret: str, replacement: str) -> Any:
    """``value`` with every string containing ``secret`` replaced by ``replacement``."""
    if type(value) is str:
        return replacement if secret in value else value
    if type(value) is dict:
        return {k: _redacted(v, secret, replacement) for k, v in value.items()}
    if type(value) is list:
        return [_redacted(v, secret, replacement) for v in value]
    return value


def _resource_label(resource: str) -> str:
    prefix = "arn:aws:states:::"
    if resource.startswith(prefix):
        return resource[len(prefix) :].split(":", 1)[0]
    return resource


async def _start_execution(
    ex: Execution, frame: Frame, st: State, resource: str, payload: Any, attempt: int, limit_s: float | None
) -> Any:
    """``states:startExecution`` (fire and forget), ``.sync`` and ``.sync:2``.

    A ``.sync`` Task with TimeoutSeconds fails with ``States.Timeout`` when the child has not
    ended by then (on the host's clock, from a deadline kept in the snapshot, so a restart
    does not extend it), and the child is stopped: nothing waits for its result any more.
    """
    if type(payload) is not dict or type(payload.get("StateMachineArn")) is not str:
        raise StatesError(E.RUNTIME, "startExecution needs a StateMachineArn parameter")
    target = payload["StateMachineArn"]
    child_input = payload.get("Input", {})
    if type(child_input) is str:
        try:
            import json

            child_input = json.loads(child_input)
        except ValueError:
            pass
    name = payload.get("Name") or ex.child_name(frame, st, str(attempt))
    arn = f"arn:aws:states:local:000000000000:execution:{target.rsplit(':', 1)[-1]}:{name}"
    # The name is durable before the child starts: a restart starts no second child.
    if resource == _START_EXECUTION:
        await ex.suspend_point()
        await ex.host.start_child(target, child_input, name=name, wait=False)
        return {"ExecutionArn": arn, "StartDate": ex.host.now()}
    ex.emit("TaskStarted", {"resource": resource})
    await ex.suspend_point()
    describe = {"ExecutionArn": arn, "StateMachineArn": target, "Name": name, "StartDate": ex.host.now()}
    ex.waiting_children[name] = frame.label
    try:
        if limit_s is None:
            output = await ex.host.start_child(target, child_input, name=name)
        else:
            output = await _child_within(ex, frame, target, child_input, name, limit_s)
    except asyncio.CancelledError:
        raise  # still listed: if a sibling failed, the Parallel or Map stops this child
    except StatesError as err:
        ex.waiting_children.pop(name, None)
        if err.error == E.TIMEOUT:
            raise
        if err.error == E.RUNTIME or (err.error or "").startswith("StepFunctions."):
            raise  # the child could not start (no such machine, its name taken): not its failure
        failed = {**describe, "Status": "FAILED", "Error": err.error, "Cause": err.cause, "StopDate": ex.host.now()}
        raise StatesError(E.TASK_FAILED, to_json_text(failed)) from None
    ex.waiting_children.pop(name, None)
    version2 = resource.endswith(".sync:2")
    return {
        **describe,
        "Status": "SUCCEEDED",
        "StopDate": ex.host.now(),
        "Input": child_input if version2 else to_json_text(child_input),
        "Output": output if version2 else to_json_text(output),
    }


async def _child_within(ex: Execution, frame: Frame, target: str, child_input: Any, name: str, limit_s: float) -> Any:
    """Wait for child run ``name`` until the Task's deadline (kept in the snapshot, so a
    restart does not extend it; a Retry gets a new one); the host stops a child still
    running at the deadline."""
    deadline = frame.rec.setdefault("child_deadline", ex.host.now() + limit_s)
    try:
        output = await ex.host.start_child(target, child_input, name=name, deadline=deadline)
    except StatesError:
        frame.rec.pop("child_deadline", None)
        raise
    frame.rec.pop("child_deadline", None)
    return output
