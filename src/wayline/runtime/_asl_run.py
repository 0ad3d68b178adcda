"""Step Functions state machines as wayline runs.

An ASL run is a workflow whose body is the ASL interpreter; its run actor awaits it
directly. Every checkpoint saves the interpreter's snapshot (and its Step Functions-style
history events) in the run's record, in one transaction; Wait deadlines and retry backoff
live in that snapshot, so timers need no journal. A restarted run resumes from the
snapshot: finished states are not run again (unlike code-first workflows, nothing is
replayed). Task calls happen at least once: one in flight at a crash runs again.

Child executions (``states:startExecution``, ``.sync``, ``.sync:2``, and the items of a
distributed Map) are runs of their own, with their own checkpoints and history. A child's
run id is the name the interpreter gives it, which is deterministic (the parent's run id,
the state, its visit, the attempt and the item, or the ``Name`` the state passes), so a
parent restarted after a crash re-attaches to the same child instead of starting another.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .._errors import (
    ChildMachineNotFoundError,
    RunAlreadyFinishedError,
    RunConflictError,
    RunNotFoundError,
    RuntimeClosedError,
    WorkflowNotFoundError,
)
from ..persistence import RunRecord, RunStatus
from ._context import RunContext
from ._definitions import WorkflowDef
from ._stepinfo import StepInfo, _current as _current_step
from .asl import StateMachine, StatesError, execute
from .asl._jsonata import is_expression
from .asl._machine import call_resource, find_resource
from .asl._states import Program, State

if TYPE_CHECKING:
    from ._runtime import Runtime

#: Metadata keys of a child run: the run that started it, and whether that run waits for it.
PARENT_KEY = "parent_run_id"
DETACHED_KEY = "detached"

_START_EXECUTION = "arn:aws:states:::states:startExecution"


class AslWorkflow(WorkflowDef[Any, Any]):
    """A state machine wrapped as a workflow; ``machines`` resolves the child executions it
    starts, which run as runs of ``rt``."""

    kind = "asl"

    def __init__(self, machine: StateMachine, machines: Mapping[str, StateMachine], rt: Runtime) -> None:
        async def body(ctx: RunContext, input: Any) -> Any:
            return await _run_machine(ctx, input, machine, machines, rt)

        super().__init__(body, name=machine.name, version=machine.version)
        self.machine = machine
        # Whether its runs can wait on child runs, which a cancel of the run must cancel too.
        self.waits_on_children = any(
            (st.type == "Map" and st.distributed)
            or (st.type == "Task" and st.resource.startswith(_START_EXECUTION) and st.resource != _START_EXECUTION)
            for st in _walk(machine.program)
        )


def asl_workflows(machines: Mapping[str, StateMachine], rt: Runtime) -> dict[str, AslWorkflow]:
    """The workflows of the registered ``machines`` and of the item machines their
    distributed Maps run (child runs must be recoverable by name), by name.

    Raises:
        ChildMachineNotFoundError: a Task starts a literal StateMachineArn that is not registered.
        WorkflowNotFoundError: an item machine's name ("machine/MapState") is taken.
    """
    out: dict[str, AslWorkflow] = {}
    pending = list(machines.values())
    while pending:
        machine = pending.pop()
        if machine.name in out:
            raise WorkflowNotFoundError(machine.name, tuple(out), other_definition=True)
        out[machine.name] = AslWorkflow(machine, machines, rt)
        for state in _walk(machine.program):
            if state.type == "Map" and state.distributed:
                pending.append(machine.item_machine(state))
            target = _literal_target(state)
            if target is not None and _resolve(machines, target) is None:
                raise ChildMachineNotFoundError(machine.name, state.name, target, tuple(machines))
    return out


def _walk(program: Program) -> Iterator[State]:
    """Every state of ``program``, with those of its Parallel branches and inline Map
    processors (a distributed Map's processor is a machine of its own)."""
    for state in program.states.values():
        yield state
        for branch in state.branches:
            yield from _walk(branch)
        if state.processor is not None and not state.distributed:
            yield from _walk(state.processor)


def _literal_target(state: State) -> str | None:
    """The StateMachineArn a startExecution Task names literally, if it does."""
    if state.type != "Task" or not state.resource.startswith(_START_EXECUTION):
        return None
    params = state.raw.get("Arguments" if state.jsonata else "Parameters")
    target = params.get("StateMachineArn") if isinstance(params, dict) else None
    if not isinstance(target, str) or (state.jsonata and is_expression(target)):
        return None
    return target


def _resolve(machines: Mapping[str, StateMachine], target: str) -> StateMachine | None:
    """A registered machine by name, or by the name at the end of an ARN."""
    return machines.get(target) or machines.get(target.rsplit(":", 1)[-1])


async def _run_machine(
    ctx: RunContext, input: Any, machine: StateMachine, machines: Mapping[str, StateMachine], rt: Runtime
) -> Any:
    host = _RunHost(ctx, machine, machines, rt)
    started = datetime.fromtimestamp(ctx.started_at, UTC).isoformat(timespec="milliseconds")
    context = {
        "Execution": {
            "Id": f"arn:wayline:states:::execution:{machine.name}:{ctx.run_id}",
            "Name": ctx.run_id,
            "StartTime": started.replace("+00:00", "Z"),
        },
        "StateMachine": {"Id": f"arn:wayline:states:::stateMachine:{machine.name}", "Name": machine.name},
    }
    resume = ctx.saved_state if isinstance(ctx.saved_state, dict) else None
    return await execute(machine, input, host, context=context, resume=resume)


class _RunHost:
    """The `AslHost` of one run: every effect is a command its run actor performs."""

    def __init__(
        self, ctx: RunContext, machine: StateMachine, machines: Mapping[str, StateMachine], rt: Runtime
    ) -> None:
        self.ctx = ctx
        self.machine = machine
        self.machines = machines
        self.rt = rt

    def now(self) -> float:
        return self.ctx.now()

    async def sleep_until(self, when: float) -> None:
        await self.ctx._clock.sleep(when - self.ctx.now())

    def _resource(self, name: str) -> Any:
        resources = self.machine.resources
        fn = find_resource(resources, name)
        if fn is None:
            known = ", ".join(sorted(resources)) or "none"
            raise StatesError(
                "States.Runtime",
                f"no resource is bound to {name!r}; pass it in StateMachine(..., resources={{...}}) (bound: {known})",
            )
        return fn

    async def invoke(
        self,
        resource: str,
        payload: Any,
        *,
        state: str,
        step: str,
        attempt: int,
        timeout_seconds: float | None,
        heartbeat_seconds: float | None,
    ) -> Any:
        fn = self._resource(resource)
        ctx = self.ctx
        # step_info() inside a resource: the interpreter's step id is stable across a crash.
        token = _current_step.set(StepInfo(ctx.run_id, step, -1, attempt + 1, ctx.workflow))
        try:
            if ctx._segment is None:
                return await call_resource(fn, payload, timeout_seconds)
            with ctx._segment.task_attempt(state, attempt + 1, resource):
                return await call_resource(fn, payload, timeout_seconds)
        finally:
            _current_step.reset(token)

    async def new_task_token(self, *, state: str, step: str) -> str:
        waits = self.ctx._waits
        assert waits is not None, "an ASL run's context is bound to its run actor"
        return await waits.new_direct_token(step)

    async def wait_task_token(
        self, token: str, *, timeout_seconds: float | None, heartbeat_seconds: float | None
    ) -> Any:
        waits = self.ctx._waits
        assert waits is not None, "an ASL run's context is bound to its run actor"
        return await waits.wait_direct(token, timeout_seconds, heartbeat_seconds)

    def _child_machine(self, machine: str | StateMachine) -> StateMachine:
        if isinstance(machine, StateMachine):
            return machine
        target = _resolve(self.machines, machine)
        if target is None:
            known = ", ".join(repr(k) for k in sorted(self.machines)) or "none"
            raise StatesError(
                "States.Runtime",
                f"no state machine named {machine!r} is registered (the name after the last ':' of "
                f"StateMachineArn is looked up); pass it in open_runtime(..., workflows=[...]). "
                f"Registered: {known}",
            )
        return target

    async def start_child(
        self, machine: str | StateMachine, input: Any, *, name: str, wait: bool = True, deadline: float | None = None
    ) -> Any:
        """Start the child run ``name`` (or find it: ``rt.start`` is idempotent on its id) and,
        if ``wait``, return its output once it ends, from the store if it already has."""
        target = self._child_machine(machine)
        rt = self.rt
        metadata: dict[str, Any] = {PARENT_KEY: self.ctx.run_id}
        if not wait:
            metadata[DETACHED_KEY] = True
        try:
            await rt._start_child(target.name, input, run_id=name, metadata=metadata)
        except RunConflictError as exc:
            raise StatesError("StepFunctions.ExecutionAlreadyExistsException", str(exc)) from None
        except WorkflowNotFoundError as exc:  # an unregistered StateMachine object
            raise StatesError("States.Runtime", str(exc)) from None
        if not wait:
            return None
        try:
            if deadline is None:
                rec = await rt._wait_finished(name)
            else:
                rec = await self._wait_until(name, deadline)
        except RuntimeClosedError:
            # The runtime is stopping this run with every other: it must end unrecorded (a
            # failure here would be committed), and the next runtime resumes the wait.
            raise asyncio.CancelledError from None
        except (RunNotFoundError, WorkflowNotFoundError) as exc:  # deleted, or its machine unregistered since
            raise StatesError("States.Runtime", str(exc)) from None
        if rec.status is RunStatus.SUCCEEDED:
            return rec.output
        # Failed or cancelled ("Cancelled", with the reason as its cause): its error as recorded.
        error = rec.error
        raise StatesError(error.error if error else "States.Runtime", error.cause if error else None)

    async def _wait_until(self, name: str, deadline: float) -> RunRecord:
        """The child run's final record, or ``States.Timeout`` (the child stopped) at ``deadline``."""
        waiting = asyncio.ensure_future(self.rt._wait_finished(name))
        clock = asyncio.ensure_future(self.ctx._clock.sleep(deadline - self.ctx.now()))
        try:
            await asyncio.wait({waiting, clock}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for fut in (waiting, clock):
                if not fut.done():
                    fut.cancel()
            await asyncio.gather(waiting, clock, return_exceptions=True)
        if waiting.cancelled():
            await self.stop_children([name], "its parent's Task timed out (TimeoutSeconds)")
            raise StatesError("States.Timeout", f"The child execution {name!r} did not end by its deadline")
        return waiting.result()

    async def stop_children(self, names: list[str], reason: str) -> None:
        rt = self.rt

        async def stop(name: str) -> None:
            with contextlib.suppress(RunNotFoundError, RunAlreadyFinishedError):
                await rt.cancel(name, reason)

        await asyncio.gather(*(stop(name) for name in names))

    async def checkpoint(self, snapshot: dict[str, Any], events: list[dict[str, Any]]) -> None:
        save = self.ctx._save_state
        assert save is not None, "an ASL run's context is bound to its run actor"
        await save(snapshot, events)
