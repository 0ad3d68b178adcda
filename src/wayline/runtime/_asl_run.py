"""Step Functions state machines as wayline runs.

An ASL run is a workflow whose body is the ASL interpreter; its run actor awaits it
directly. Every checkpoint saves the interpreter's snapshot (and its Step Functions-style
history events) in the run's record, in one transaction; Wait deadlines and retry backoff
live in that snapshot, so timers need no journal. A restarted run resumes from the
snapshot: finished states are not run again (unlike code-first workflows, nothing is
replayed). Task calls happen at least once: one in flight at a crash runs again.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ._context import RunContext
from ._definitions import WorkflowDef
from .asl import StateMachine, StatesError, execute
from .asl._machine import call_resource, find_resource


def asl_workflow(machine: StateMachine, machines: Mapping[str, StateMachine]) -> WorkflowDef[Any, Any]:
    """Wrap ``machine`` as a workflow; ``machines`` resolves ``.sync`` child executions."""

    async def body(ctx: RunContext, input: Any) -> Any:
        host = _RunHost(ctx, machine, machines)
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

    wf: WorkflowDef[Any, Any] = WorkflowDef(body, name=machine.name, version=machine.version)
    wf.kind = "asl"
    return wf


class _RunHost:
    """The `AslHost` of one run: every effect is a command its run actor performs."""

    def __init__(self, ctx: RunContext, machine: StateMachine, machines: Mapping[str, StateMachine]) -> None:
        self.ctx = ctx
        self.machine = machine
        self.machines = machines

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
        return await call_resource(self._resource(resource), payload, timeout_seconds)

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

    async def start_child(self, machine: str | StateMachine, input: Any, *, name: str) -> Any:
        # A child execution runs inside this run, on this host: its task calls and timers are
        # this run's, and its progress is saved only with the parent's next checkpoint.
        if isinstance(machine, str):
            target = self.machines.get(machine) or self.machines.get(machine.rsplit(":", 1)[-1])
            if target is None:
                raise StatesError("States.Runtime", f"no state machine named {machine!r} is registered")
            machine = target
        return await execute(machine, input, _ChildHost(self, machine), context={"Execution": {"Name": name}})

    async def checkpoint(self, snapshot: dict[str, Any], events: list[dict[str, Any]]) -> None:
        save = self.ctx._save_state
        assert save is not None, "an ASL run's context is bound to its run actor"
        await save(snapshot, events)


class _ChildHost(_RunHost):
    """A child execution's host: the parent's effects, the child's resources, no checkpoints."""

    def __init__(self, parent: _RunHost, machine: StateMachine) -> None:
        super().__init__(parent.ctx, machine, parent.machines)

    async def checkpoint(self, snapshot: dict[str, Any], events: list[dict[str, Any]]) -> None:
        return None
