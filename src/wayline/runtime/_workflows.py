"""The workflows a runtime can run: code-first `WorkflowDef`s and state machines, by name.

A state machine is registered as an `AslWorkflow`, with the item machines of its distributed
Maps (their child runs must be recoverable by name) and the machines its Tasks may start.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .._errors import ChildMachineNotFoundError, NotRegisteredError, WorkflowNotFoundError
from ._definitions import WorkflowDef
from .asl import StateMachine


class AslWorkflow:
    """A state machine as a runtime runs it: its runs start no body of their own; the run
    actor drives the interpreter. ``machines`` resolves the child executions it starts."""

    kind = "asl"

    def __init__(self, machine: StateMachine, machines: Mapping[str, StateMachine]) -> None:
        self.machine = machine
        self.machines = machines
        self.name = machine.name
        self.version = machine.version
        # Whether its runs can wait on child runs, which a cancel of the run must cancel too.
        self.waits_on_children = machine.waits_on_children

    def __repr__(self) -> str:
        return f"<state machine {self.name!r} v{self.version}>"


#: A registered workflow, as the runtime runs it.
Workflow = WorkflowDef[Any, Any] | AslWorkflow


class Registry:
    """Workflows by name, and what the user registered under each name."""

    def __init__(self, workflows: Iterable[WorkflowDef[Any, Any] | StateMachine]) -> None:
        self._workflows: dict[str, Workflow] = {}
        self._sources: dict[str, object] = {}  # what the user registered, by name
        given = list(workflows)
        machines = {m.name: m for m in given if isinstance(m, StateMachine)}
        # With the machines their distributed Maps run per item: those child runs are recovered by name.
        wrapped = asl_workflows(machines)
        for wf in given:
            if isinstance(wf, StateMachine):
                self._workflows[wf.name] = wrapped[wf.name]
            elif isinstance(wf, WorkflowDef):
                self._workflows[wf.name] = wf
            else:
                raise NotRegisteredError(wf, "workflow")
            self._sources[wf.name] = wf
        for name, item in wrapped.items():
            if name in machines:
                continue
            if name in self._workflows:
                raise WorkflowNotFoundError(name, tuple(self._workflows), other_definition=True)
            self._workflows[name] = item
            self._sources[name] = item.machine

    def __contains__(self, name: str) -> bool:
        return name in self._workflows

    def names(self) -> tuple[str, ...]:
        return tuple(self._workflows)

    def get(self, name: str) -> Workflow | None:
        return self._workflows.get(name)

    def lookup(self, name: str, *, run_id: str | None = None) -> Workflow:
        """The workflow registered as ``name``.

        Raises:
            WorkflowNotFoundError: none is.
        """
        wf = self._workflows.get(name)
        if wf is None:
            raise WorkflowNotFoundError(name, tuple(self._workflows), run_id=run_id)
        return wf

    def resolve(self, workflow: object) -> Workflow:
        """The registered workflow a caller means: a name, or the very object registered.

        Raises:
            NotRegisteredError: ``workflow`` is neither a name nor a workflow.
            WorkflowNotFoundError: nothing is registered under its name, or something else is.
        """
        name = workflow if isinstance(workflow, str) else getattr(workflow, "name", None)
        if not isinstance(name, str):
            raise NotRegisteredError(workflow, "workflow")
        wf = self.lookup(name)
        if not isinstance(workflow, str) and workflow is not self._sources[name]:
            raise WorkflowNotFoundError(name, tuple(self._workflows), other_definition=True)
        return wf


def asl_workflows(machines: Mapping[str, StateMachine]) -> dict[str, AslWorkflow]:
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
        out[machine.name] = AslWorkflow(machine, machines)
        pending.extend(machine.item_machines())
        for state, target in machine.child_targets():
            if resolve_machine(machines, target) is None:
                raise ChildMachineNotFoundError(machine.name, state, target, tuple(machines))
    return out


def resolve_machine(machines: Mapping[str, StateMachine], target: str) -> StateMachine | None:
    """A registered machine by name, or by the name at the end of an ARN."""
    return machines.get(target) or machines.get(target.rsplit(":", 1)[-1])
