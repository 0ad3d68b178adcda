"""Errors about what is registered: workflows, versions, schedules, aliases, child machines."""

from __future__ import annotations

from ._base import WaylineError


class WorkflowNotFoundError(WaylineError):
    """A run names a workflow that was not registered with the runtime."""

    def __init__(
        self, name: str, known: tuple[str, ...], *, run_id: str | None = None, other_definition: bool = False
    ) -> None:
        self.name = name
        self.run_id = run_id
        if other_definition:
            super().__init__(
                f"another definition is registered under the workflow name {name!r}: two workflows "
                "share a name; give each its own name=, and pass the one you start to open_runtime"
            )
            return
        listed = ", ".join(repr(k) for k in known) or "none"
        where = f" (needed by run {run_id!r})" if run_id else ""
        super().__init__(
            f"workflow {name!r} is not registered{where}; pass it in "
            f"open_runtime(..., workflows=[...]). Registered: {listed}"
        )


class VersionNotFoundError(WorkflowNotFoundError):
    """A version of a registered workflow was asked for, and no definition has that label."""

    def __init__(self, name: str, version: str, known: tuple[str, ...]) -> None:
        self.name = name
        self.version = version
        self.run_id = None
        listed = ", ".join(repr(k) for k in known) or "none"
        WaylineError.__init__(
            self,
            f"workflow {name!r} has no version {version!r} registered; registered versions: {listed}. "
            "Pass the definition labelled with that version= in open_runtime(..., workflows=[...]), "
            "or start another version",
        )


class DuplicateWorkflowError(WaylineError):
    """Two different definitions were registered under one workflow name and version."""

    def __init__(self, name: str, version: str) -> None:
        self.name = name
        self.version = version
        super().__init__(
            f"two different definitions are registered as workflow {name!r} version {version!r}; a run "
            "resumes with its version's definition, so each version needs a label of its own: give one "
            "a new version=, or register only one"
        )


class ScheduleSpecError(WaylineError, ValueError):
    """A schedule's definition is invalid: its cron expression, interval, time zone, policy..."""

    def __init__(self, schedule_id: str | None, problem: str) -> None:
        self.schedule_id = schedule_id
        self.problem = problem
        where = f"schedule {schedule_id!r}" if schedule_id else "schedule"
        super().__init__(f"{where}: {problem}")


class ScheduleNotFoundError(WaylineError):
    """No schedule with this id exists."""

    def __init__(self, schedule_id: str) -> None:
        self.schedule_id = schedule_id
        super().__init__(
            f"no schedule with id {schedule_id!r}; check the id, or list schedules with rt.list_schedules() "
            "(`wayline schedules list`)"
        )


class ScheduleExistsError(WaylineError):
    """A schedule with this id exists already."""

    def __init__(
        self, schedule_id: str, *, declared: bool = False, workflow: str | None = None, clash: bool = False
    ) -> None:
        self.schedule_id = schedule_id
        if clash:
            what = (
                f"is declared by workflow {workflow!r} (@workflow(schedules=...)), and a schedule made with "
                f"rt.create_schedule has that id; give the declared Schedule another id=, or delete the other "
                f"(`wayline schedules delete {schedule_id}`)"
            )
        elif declared:
            what = f"is declared by workflow {workflow!r} (@workflow(schedules=...)); it follows the code"
        else:
            what = "exists; change it with rt.get_schedule(id).update(...), or delete it first"
        super().__init__(f"schedule {schedule_id!r} {what}")


class ScheduleConflictError(WaylineError):
    """A schedule kept changing under a change to it (another process changes it too)."""

    def __init__(self, schedule_id: str, attempts: int) -> None:
        self.schedule_id = schedule_id
        super().__init__(
            f"schedule {schedule_id!r} was changed by someone else {attempts} times while this change was "
            "being made; nothing was changed: try again"
        )


class AliasError(WaylineError):
    """A `StateMachineAlias` is invalid, or routes to a version that is not registered."""

    def __init__(self, alias: str, machine: str, reason: str) -> None:
        self.alias = alias
        self.machine = machine
        super().__init__(f"alias {alias!r} of state machine {machine!r}: {reason}")


class ChildMachineNotFoundError(WorkflowNotFoundError):
    """A state machine starts a child execution of a machine that is not registered."""

    def __init__(self, machine: str, state: str, target: str, known: tuple[str, ...]) -> None:
        self.name = target
        self.run_id = None
        self.machine = machine
        self.state = state
        listed = ", ".join(repr(k) for k in known) or "none"
        WaylineError.__init__(
            self,
            f"state machine {machine!r}, state {state!r}: StateMachineArn {target!r} names no registered "
            "state machine (the name after its last ':' is looked up); register the child machine in "
            f"open_runtime(..., workflows=[...]) or fix the ARN. Registered state machines: {listed}",
        )
