"""The workflows a runtime can run: code-first `WorkflowDef`s and state machines, by name
and version, and the aliases that route new runs between versions.

A state machine is registered as an `AslWorkflow`, with the item machines of its distributed
Maps (their child runs must be recoverable by name) and the machines its Tasks may start.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .._errors import (
    AliasError,
    ChildMachineNotFoundError,
    DuplicateWorkflowError,
    NotRegisteredError,
    VersionNotFoundError,
    WorkflowNotFoundError,
)
from ._definitions import WorkflowDef
from ._flow_spec import FlowSpec
from ._triggers import check_cancel_on, check_triggers
from ._versions import StateMachineAlias, newest, version_key
from .asl import ResourceError, StateMachine


class AslWorkflow:
    """A state machine as a runtime runs it: its runs start no body of their own; the run
    actor drives the interpreter. ``machines`` resolves the child executions it starts."""

    kind = "asl"

    def __init__(
        self, machine: StateMachine, machines: Mapping[str, StateMachine], code: frozenset[str] = frozenset()
    ) -> None:
        self.machine = machine
        self.machines = machines
        self.code = code  # the code workflows registered beside it: a Task may start them too
        self.name = machine.name
        self.version = machine.version
        # Whether its runs can wait on child runs, which a cancel of the run must cancel too.
        self.waits_on_children = machine.waits_on_children
        self.triggers = check_triggers(f"StateMachine {machine.name!r}", machine.triggers)
        self.cancel_on = check_cancel_on(f"StateMachine {machine.name!r}", machine.cancel_on)
        self.flow: FlowSpec | None = None  # state machines take no flow control (yet)
        self.idempotency_key = None
        self.on_failure = None

    def __repr__(self) -> str:
        return f"<state machine {self.name!r} v{self.version}>"


#: A registered workflow, as the runtime runs it.
Workflow = WorkflowDef[Any, Any] | AslWorkflow

#: What ``workflows=`` accepts.
Registrable = WorkflowDef[Any, Any] | StateMachine | StateMachineAlias


class Registry:
    """Workflows by name and version, the aliases that route between versions, and what the
    user registered under each name (see `_versions` for what "newest" means)."""

    def __init__(self, workflows: Iterable[Registrable]) -> None:
        self._versions: dict[str, dict[str, Workflow]] = {}
        self._newest: dict[str, Workflow] = {}
        self._sources: dict[str, list[object]] = {}  # what the user registered, by name
        self._aliases: dict[str, StateMachineAlias] = {}  # by "<machine>:<alias>"
        given = list({id(w): w for w in workflows}.values())  # the same object twice is one
        aliases = [w for w in given if isinstance(w, StateMachineAlias)]
        machines = [w for w in given if isinstance(w, StateMachine)]
        for machine in machines:
            # Refused here, not when a run reaches the Task: that would leave a FAILED run.
            unbound = machine.unbound_resources()
            if unbound:
                raise ResourceError(machine.name, unbound)
        for wf in given:
            if isinstance(wf, WorkflowDef):
                self._add(wf, wf)
            elif not isinstance(wf, StateMachine | StateMachineAlias):
                raise NotRegisteredError(wf, "workflow")
        # With the machines their distributed Maps run per item: those child runs are recovered by name.
        code = frozenset(wf.name for wf in given if isinstance(wf, WorkflowDef))
        for item in asl_workflows(machines, code):
            self._add(item, item.machine)
        for name, versions in self._versions.items():
            self._newest[name] = versions[newest(list(versions))]
        for alias in aliases:
            self._add_alias(alias)

    def _add(self, wf: Workflow, source: object) -> None:
        versions = self._versions.setdefault(wf.name, {})
        if wf.version in versions:
            raise DuplicateWorkflowError(wf.name, wf.version)
        versions[wf.version] = wf
        self._sources.setdefault(wf.name, []).append(source)

    def _add_alias(self, alias: StateMachineAlias) -> None:
        versions = self._versions.get(alias.machine)
        if versions is None:
            raise AliasError(alias.name, alias.machine, "no workflow of that name is registered")
        for version in alias.routing:
            if version not in versions:
                known = ", ".join(repr(v) for v in versions)
                raise AliasError(
                    alias.name, alias.machine, f"version {version!r} is not registered (registered: {known})"
                )
        if alias.qualified in self._versions or alias.qualified in self._aliases:
            raise AliasError(alias.name, alias.machine, f"the name {alias.qualified!r} is taken")
        self._aliases[alias.qualified] = alias

    def __contains__(self, name: str) -> bool:
        return name in self._versions

    def names(self) -> tuple[str, ...]:
        return tuple(self._versions)

    def versions(self, name: str) -> tuple[str, ...]:
        """The versions registered under ``name``, oldest first."""
        return tuple(sorted(self._versions.get(name, ()), key=version_key))

    def newest(self) -> list[Workflow]:
        """The newest version of every registered workflow."""
        return list(self._newest.values())

    def get(self, name: str) -> Workflow | None:
        """The newest version registered under ``name``, if any."""
        return self._newest.get(name)

    def lookup(self, name: str, *, run_id: str | None = None, version: str | None = None) -> Workflow:
        """The workflow registered as ``name``: version ``version``, or the newest.

        A run (``run_id``) recorded under a version that is no longer registered is resumed by
        the newest: its replay checks the steps, as before versions existed side by side.

        Raises:
            WorkflowNotFoundError: nothing is registered under ``name``.
            VersionNotFoundError: a new run asks for a version that is not registered.
        """
        versions = self._versions.get(name)
        if versions is None:
            raise WorkflowNotFoundError(name, tuple(self._versions), run_id=run_id)
        if version is not None:
            wf = versions.get(version)
            if wf is not None:
                return wf
            if run_id is None:
                raise VersionNotFoundError(name, version, self.versions(name))
        return self._newest[name]

    def resolve(self, workflow: object, *, version: str | None = None) -> Workflow | StateMachineAlias:
        """The registered workflow a caller means: a registered object or its name (the newest
        version, unless ``version`` is given), ``"<name>:<version>"``, or an alias (an alias
        picks the version per run: see `StateMachineAlias.route`).

        Raises:
            NotRegisteredError: ``workflow`` is neither a name nor a workflow.
            WorkflowNotFoundError: nothing is registered under its name, or something else is.
            VersionNotFoundError: ``version`` is not registered.
        """
        if isinstance(workflow, StateMachineAlias):
            alias = self._aliases.get(workflow.qualified)
            if alias is None or alias.routing != workflow.routing:
                raise WorkflowNotFoundError(workflow.qualified, tuple(self._versions))
            return self._check_alias(alias, version)
        name = workflow if isinstance(workflow, str) else getattr(workflow, "name", None)
        if not isinstance(name, str):
            raise NotRegisteredError(workflow, "workflow")
        if isinstance(workflow, str) and name not in self._versions:
            alias = self._aliases.get(name)
            if alias is not None:
                return self._check_alias(alias, version)
            base, _, qualifier = name.rpartition(":")
            if base in self._versions and qualifier in self._versions[base] and version is None:
                return self._versions[base][qualifier]
        wf = self.lookup(name, version=version)
        if not isinstance(workflow, str) and all(workflow is not src for src in self._sources[name]):
            raise WorkflowNotFoundError(name, tuple(self._versions), other_definition=True)
        return wf

    @staticmethod
    def _check_alias(alias: StateMachineAlias, version: str | None) -> StateMachineAlias:
        if version is not None:
            raise AliasError(
                alias.name, alias.machine, "an alias picks the version itself; start the machine with version="
            )
        return alias


def asl_workflows(machines: list[StateMachine], code: frozenset[str] = frozenset()) -> list[AslWorkflow]:
    """The workflows of the registered ``machines`` (every version) and of the item machines
    their distributed Maps run (child runs must be recoverable by name). A Task that starts
    another machine's execution starts the newest version of it; its StateMachineArn may
    also name one of the registered code workflows ``code``.

    Raises:
        ChildMachineNotFoundError: a Task starts a literal StateMachineArn that is not registered.
        WorkflowNotFoundError: an item machine's name ("machine/MapState") is taken.
    """
    by_name: dict[str, StateMachine] = {}
    registered: set[tuple[str, str]] = set()
    for machine in machines:
        if (machine.name, machine.version) in registered:
            raise DuplicateWorkflowError(machine.name, machine.version)
        registered.add((machine.name, machine.version))
        held = by_name.get(machine.name)
        if held is None or version_key(machine.version) > version_key(held.version):
            by_name[machine.name] = machine
    out: dict[tuple[str, str], AslWorkflow] = {}
    pending = list(machines)
    while pending:
        machine = pending.pop()
        key = (machine.name, machine.version)
        if key in out:  # an item machine under the name of another machine
            raise WorkflowNotFoundError(machine.name, tuple(by_name), other_definition=True)
        out[key] = AslWorkflow(machine, by_name, code)
        pending.extend(machine.item_machines())
        for state, target in machine.child_targets():
            if resolve_machine(by_name, target) is None and resolve_code(code, target) is None:
                raise ChildMachineNotFoundError(machine.name, state, target, tuple(by_name))
    return list(out.values())


def resolve_machine(machines: Mapping[str, StateMachine], target: str) -> StateMachine | None:
    """A registered machine by name, or by the name at the end of an ARN."""
    return machines.get(target) or machines.get(target.rsplit(":", 1)[-1])


def resolve_code(code: frozenset[str], target: str) -> str | None:
    """A registered code workflow's name, given as is or at the end of an ARN."""
    if target in code:
        return target
    short = target.rsplit(":", 1)[-1]
    return short if short in code else None
