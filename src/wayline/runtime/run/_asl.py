"""Step Functions state machines as wayline runs: the host their interpreter runs on.

A state machine's run is driven by the ASL interpreter, which runs as a task beside the run's
mailbox. Every effect it needs is a call on this host: checkpoints and callback tokens are
requests to the run's actor (through its mailbox, so they take their turn with the messages
from outside), timers use the runtime's clock, child runs go through the run's port. Every
checkpoint saves the interpreter's snapshot (and its Step Functions-style history events) in
the run's record, in one transaction; Wait deadlines and retry backoff live in that snapshot.
A restarted run resumes from it: finished states are not run again (unlike code-first
workflows, nothing is replayed). Task calls happen at least once.

Child executions (``states:startExecution``, ``.sync``, ``.sync:2``, and the items of a
distributed Map) are runs of their own. A child's run id is the name the interpreter gives
it, which is deterministic, so a parent restarted after a crash re-attaches to the same
child instead of starting another. A child's end reaches a parent that waits for it through
the parent's durable inbox, as a code workflow's child's end does (see `_children`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
from opentelemetry import context as otel_context

from ..._errors import (
    RunAlreadyFinishedError,
    RunConflictError,
    RunNotFoundError,
    WorkflowNotFoundError,
)
from ...persistence import ChildDone, RunStatus, StepStarted, encode
from .._context import RunContext
from .._metadata import child_metadata
from .._port import RunPort
from .._stepinfo import StepInfo, _current as _current_step
from .._telemetry import Segment
from .._workflows import AslWorkflow, resolve_code, resolve_machine
from ..asl import StateMachine, StatesError, call_resource, execute
from ._effects import Reply
from ._messages import (
    AslCheckpoint,
    AslChildTaken,
    AslNewToken,
    AslTokenTaken,
    AslWaitChild,
    AslWaitToken,
    RunMessage,
)

#: Metadata keys of a child run: the run that started it, and whether that run waits for it.
PARENT_KEY = "parent_run_id"
DETACHED_KEY = "detached"


class AslHost:
    """The `wayline.runtime.asl.AslHost` of one run."""

    def __init__(
        self,
        workflow: AslWorkflow,
        ctx: RunContext,
        port: RunPort,
        ask: Callable[[RunMessage], Awaitable[Reply]],
        woken: Callable[[int], Awaitable[None]],
        segment: Segment | None,
    ) -> None:
        self.machine = workflow.machine
        self.machines = workflow.machines
        self.code = workflow.code
        self.ctx = ctx
        self.port = port
        self._ask = ask  # a request to the run's actor, answered once it is applied
        self._woken = woken  # wait until the run's callback wait at a position has an outcome
        self._segment = segment
        # The Task attempts running now, by step id: what `rt.describe` shows of a state
        # machine's steps in flight. Memory only, as for code workflows: no write per attempt.
        self.running: dict[str, StepStarted] = {}

    async def run(self, input: Any) -> Any:
        """Run the machine from the start, or from the snapshot the run saved last."""
        ctx = self.ctx
        machine = self.machine
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
        on_wait = self._segment.wait_started if self._segment is not None else None
        return await execute(machine, input, self, context=context, resume=resume, on_wait=on_wait)

    def now(self) -> float:
        return self.ctx.now()

    async def sleep_until(self, when: float) -> None:
        await self.port.clock.sleep(when - self.ctx.now())

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
        fn = self.machine.resource(resource)
        if fn is None:
            known = ", ".join(sorted(self.machine.resources)) or "none"
            raise StatesError(
                "States.Runtime",
                f"no resource is bound to {resource!r}; pass it in StateMachine(..., resources={{...}}) "
                f"(bound: {known})",
            )
        ctx = self.ctx
        # step_info() inside a resource: the interpreter's step id is stable across a crash.
        token = _current_step.set(StepInfo(ctx.run_id, step, -1, attempt + 1, ctx.workflow))
        # Shown as `step_info()` names it: the step id (a Map item's or Parallel branch's
        # position included), index -1 (a state machine has no journal).
        self.running[step] = StepStarted(ts=ctx.now(), step=step, index=-1, attempt=attempt + 1)
        try:
            if self._segment is None:
                return await call_resource(fn, payload, timeout_seconds)
            with self._segment.task_attempt(state, step, attempt + 1, resource):
                return await call_resource(fn, payload, timeout_seconds)
        finally:
            del self.running[step]
            _current_step.reset(token)

    async def new_task_token(self, *, state: str, step: str) -> str:
        reply = await self._ask(AslNewToken(step))
        token: str = reply.value
        return token

    async def wait_task_token(
        self, token: str, *, timeout_seconds: float | None, heartbeat_seconds: float | None
    ) -> Any:
        reply = await self._ask(AslWaitToken(token, timeout_seconds, heartbeat_seconds))
        if reply.pending is not None:
            await self._woken(reply.pending)
            reply = await self._ask(AslTokenTaken(reply.pending))
        if reply.error is not None:
            raise reply.error
        return reply.value

    async def checkpoint(self, snapshot: dict[str, Any], events: list[dict[str, Any]]) -> None:
        # Encoded now: the interpreter keeps mutating its snapshot afterwards.
        run_id = self.ctx.run_id
        raw = msgspec.Raw(encode(snapshot, what=f"state of run {run_id!r}", run_id=run_id))
        reply = await self._ask(AslCheckpoint(raw, events))
        if reply.error is not None:
            raise reply.error

    # --- child runs ---------------------------------------------------------------------

    def _child_workflow(self, machine: str | StateMachine) -> str:
        """The registered workflow a child execution runs: a state machine, or a code
        workflow named by the StateMachineArn."""
        if isinstance(machine, StateMachine):
            return machine.name
        target = resolve_machine(self.machines, machine)
        if target is not None:
            return target.name
        code = resolve_code(self.code, machine)
        if code is None:
            known = ", ".join(repr(k) for k in sorted({*self.machines, *self.code})) or "none"
            raise StatesError(
                "States.Runtime",
                f"no state machine or workflow named {machine!r} is registered (the name after the last ':' of "
                f"StateMachineArn is looked up); pass it in open_runtime(..., workflows=[...]). "
                f"Registered: {known}",
            )
        return code

    async def start_child(
        self, machine: str | StateMachine, input: Any, *, name: str, wait: bool = True, deadline: float | None = None
    ) -> Any:
        """Start the child run ``name`` (or find it: starting is idempotent on its id) and,
        if ``wait``, return its output once it ends, from the store if it already has."""
        target = self._child_workflow(machine)
        port = self.port
        # The parent's own metadata and tags (a correlation id) carry over to the child.
        metadata, tags = child_metadata(self.ctx.metadata, self.ctx.tags)
        metadata[PARENT_KEY] = self.ctx.run_id
        if not wait:
            metadata[DETACHED_KEY] = True
        # A child run's root is a child of this run's root: the family is one trace.
        joined = otel_context.attach(self._segment.root) if self._segment is not None else None
        try:
            await port.start_child(target, input, run_id=name, metadata=metadata, tags=tags)
        except RunConflictError as exc:
            raise StatesError("StepFunctions.ExecutionAlreadyExistsException", str(exc)) from None
        except WorkflowNotFoundError as exc:  # an unregistered StateMachine object
            raise StatesError("States.Runtime", str(exc)) from None
        finally:
            if joined is not None:
                otel_context.detach(joined)
        if not wait:
            return None
        # Its end comes through this run's inbox, as a code workflow's child's does: durable,
        # so a parent restarted after a crash finds it there (or asks the child again).
        reply = await self._ask(AslWaitChild(name, target))
        if reply.pending is not None:
            stopped = not await self._woken_by(reply.pending, deadline)
            reply = await self._ask(AslChildTaken(name, drop=stopped))
            if reply.value is None:  # its deadline passed first
                await self.stop_children([name], "its parent's Task timed out (TimeoutSeconds)")
                raise StatesError("States.Timeout", f"The child execution {name!r} did not end by its deadline")
        done: ChildDone = reply.value
        if done.status == RunStatus.SUCCEEDED.value:
            return done.output
        # Failed or cancelled ("Cancelled", with the reason as its cause): its error as recorded.
        error = done.error
        raise StatesError(error.error if error else "States.Runtime", error.cause if error else None)

    async def _woken_by(self, index: int, deadline: float | None) -> bool:
        """Wait for the child's end at wait ``index``: True once it has come, False if
        ``deadline`` (host time) passed first."""
        if deadline is None:
            await self._woken(index)
            return True
        woken = asyncio.ensure_future(self._woken(index))
        clock = asyncio.ensure_future(self.port.clock.sleep(deadline - self.ctx.now()))
        try:
            await asyncio.wait({woken, clock}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for fut in (woken, clock):
                if not fut.done():
                    fut.cancel()
            await asyncio.gather(woken, clock, return_exceptions=True)
        if woken.cancelled() and not clock.cancelled():
            return False
        woken.result()  # a cancellation of this run's own wait (it is stopping) goes on up
        return True

    async def stop_children(self, names: list[str], reason: str) -> None:
        port = self.port

        async def stop(name: str) -> None:
            with contextlib.suppress(RunNotFoundError, RunAlreadyFinishedError):
                await port.cancel_run(name, reason)

        await asyncio.gather(*(stop(name) for name in names))
