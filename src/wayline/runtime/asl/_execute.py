"""`execute` and `prepare_redrive`: running a state machine, with every state type's handler.

This module sits above the interpreter and the state types, and hands the table of handlers
to each `Execution`: the handlers import the interpreter, and nothing imports them back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from . import _errors as E
from ._errors import StatesError
from ._interpreter import Execution, Frame, Handler, OnWait, Scope, iso
from ._map import run_map, run_parallel
from ._simple import run_choice, run_fail, run_pass, run_succeed, run_wait
from ._tasks import run_task

if TYPE_CHECKING:
    from ._host import AslHost
    from ._machine import StateMachine

__all__ = ("HANDLERS", "execute", "prepare_redrive")

_encode = msgspec.json.encode

#: State type -> the coroutine that runs a state of that type.
HANDLERS: Mapping[str, Handler] = {
    "Pass": run_pass,
    "Succeed": run_succeed,
    "Fail": run_fail,
    "Choice": run_choice,
    "Wait": run_wait,
    "Task": run_task,
    "Map": run_map,
    "Parallel": run_parallel,
}


async def execute(
    machine: StateMachine,
    input: Any,
    host: AslHost,
    *,
    context: Mapping[str, Any] | None = None,
    resume: dict[str, Any] | None = None,
    on_wait: OnWait | None = None,
) -> Any:
    """Run ``machine`` on ``input`` to completion and return its output.

    Args:
        machine: The compiled state machine.
        input: The execution input (JSON-compatible).
        host: Effects: time, timers, task calls, tokens, child runs, checkpoints.
        context: Fields of the ``$$`` context object: ``{"Execution": {...},
            "StateMachine": {...}}``; missing fields get defaults.
        resume: A snapshot previously passed to ``host.checkpoint``; the run continues
            from it without re-running completed states or Map/Parallel items.
        on_wait: Told when a Wait state or a Retry interval begins to wait, before the
            checkpoint that precedes the wait: ``on_wait(kind, state, step, until)``, with
            ``kind`` "wait" or "retry" and ``step`` the state's visit; what it returns, if
            anything, is called when the wait is over (telemetry uses it).

    Raises:
        StatesError: The execution failed; ``error`` and ``cause`` are as AWS reports them.
    """
    if resume is not None:
        snapshot = resume
        status = snapshot.get("status")
        if status == "SUCCEEDED":
            return snapshot.get("output")
        if status == "FAILED":
            raise StatesError(snapshot.get("error"), snapshot.get("cause"))
        # The context saved at the start keeps $$.Execution.StartTime and Input stable.
        ctx = snapshot.get("context") or _full_context(machine, input, host, context or {})
    else:
        ctx = _full_context(machine, input, host, context or {})
        snapshot = {
            "v": 1,
            "status": "RUNNING",
            "event_id": 0,
            "context": ctx,
            "frame": {"state": machine.program.start, "input": input, "vars": {}},
        }
        timeout = machine.definition.get("TimeoutSeconds")
        if type(timeout) is int:
            snapshot["deadline"] = host.now() + timeout
    ex = Execution(machine, host, ctx, snapshot, HANDLERS)
    ex.on_wait = on_wait
    frame_rec = snapshot["frame"]
    frame = Frame(machine.program, frame_rec, Scope(frame_rec.setdefault("vars", {}), None), "")
    try:
        if resume is None:
            ex.emit("ExecutionStarted", {"input": input})
            if len(_encode(input)) > ex.limit:
                raise StatesError(
                    E.DATA_LIMIT_EXCEEDED, "The execution input exceeds the maximum number of bytes service limit."
                )
            if ex.standard:
                await ex.checkpoint()
        output = await ex.run_frame(frame)
    except StatesError as err:
        ex.emit("ExecutionFailed", {"error": err.error, "cause": err.cause})
        # The frames stay in the snapshot: prepare_redrive() turns it back into a running
        # one that re-enters the failed state.
        snapshot.update({"status": "FAILED", "error": err.error, "cause": err.cause})
        await ex.checkpoint()
        raise StatesError(err.error, err.cause) from None
    event_id = ex.emit("ExecutionSucceeded", {"output": output})
    snapshot.clear()
    snapshot.update({"v": 1, "status": "SUCCEEDED", "output": output, "event_id": event_id})
    await ex.checkpoint()
    return output


def prepare_redrive(snapshot: dict[str, Any]) -> dict[str, Any]:
    """Turn the snapshot of a FAILED run into one that :func:`execute` resumes as a redrive.

    As AWS redrives: the run re-enters the state that failed, with the variables it had;
    in a Map or Parallel only the items and branches that had not succeeded run again;
    ``$$.Execution.RedriveCount`` goes up by one.

    Raises:
        ValueError: The snapshot is not of a failed run.
    """
    if snapshot.get("status") != "FAILED" or "frame" not in snapshot:
        raise ValueError("only a FAILED run's snapshot can be redriven")
    out: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(snapshot))
    out["status"] = "RUNNING"
    out.pop("error", None)
    out.pop("cause", None)
    out.pop("deadline", None)
    out["frame"].pop("retries", None)
    execution = out.get("context", {}).get("Execution")
    if isinstance(execution, dict):
        execution["RedriveCount"] = int(execution.get("RedriveCount", 0)) + 1
    return out


def _full_context(machine: StateMachine, input: Any, host: AslHost, given: Mapping[str, Any]) -> dict[str, Any]:
    sm_name = machine.name
    sm_id = f"arn:aws:states:local:000000000000:stateMachine:{sm_name}"
    execution = dict(given.get("Execution") or {})
    name = execution.setdefault("Name", "execution")
    execution.setdefault("Id", f"arn:aws:states:local:000000000000:execution:{sm_name}:{name}")
    execution.setdefault("Input", input)
    execution.setdefault("StartTime", iso(host.now()))
    execution.setdefault("RoleArn", "arn:aws:iam::000000000000:role/wayline")
    execution.setdefault("RedriveCount", 0)
    state_machine = dict(given.get("StateMachine") or {})
    state_machine.setdefault("Id", sm_id)
    state_machine.setdefault("Name", sm_name)
    return {"Execution": execution, "StateMachine": state_machine}
