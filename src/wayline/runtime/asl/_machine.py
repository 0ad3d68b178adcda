"""StateMachine: a validated, compiled ASL definition."""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any, Literal

import anyio

from ._budget import DEFAULT_MAX_LENGTH, ExpressionBudget
from ._errors import AslDefinitionError, ExpressionBudgetError, ResourceError, StatesError
from ._jsonata import is_expression
from ._states import Program, State, compile_program

__all__ = ("StateMachine", "call_resource")

#: The resource of a Task that starts another state machine's execution.
START_EXECUTION = "arn:aws:states:::states:startExecution"

Resource = Callable[..., Awaitable[Any]]


class StateMachine:
    """An Amazon States Language state machine, validated and compiled at construction.

    Args:
        definition: The ASL definition, as JSON text or as a dict.
        name: The machine's name (``$$.StateMachine.Name``); defaults to
            ``"state-machine"``.
        resources: Task resources: an ARN or short name mapped to an async callable
            ``fn(payload) -> result``. Used by :class:`LocalHost` and the runtime; a runtime
            refuses (at ``open_runtime``) a machine with a Task that has none bound.
        version: A version label for the definition.
        mode: ``"standard"`` checkpoints after every transition; ``"express"`` only when
            the run suspends (timers, callbacks, child runs) or finishes.
        max_payload_bytes: Largest state input/output, in bytes of JSON; larger fails the
            run with ``States.DataLimitExceeded``. AWS's limit is 256 KiB.
        expression_budget: Limits on each evaluation of a JSONata expression (time,
            nesting depth, size of the values it builds); see :class:`ExpressionBudget`.
            By default its ``max_length`` is at least four times ``max_payload_bytes``.
        triggers: ``[on_event(name, where=...)]``: each matching event ``rt.send_event``
            accepts starts a run, with the event (as a dict) as its input.
        cancel_on: ``[on_event(name, match=...)]``: each matching event cancels the
            unfinished runs its ``match`` relates it to (see ``wayline.on_event``).

    Raises:
        AslDefinitionError: The definition is invalid; ``problems`` lists each problem with
            its path, e.g. ``/States/Charge/Next: no state named "Chrage"``.
        ResourceError: a resource is not an async callable (a plain ``def``, say).
    """

    def __init__(
        self,
        definition: str | Mapping[str, Any],
        *,
        name: str | None = None,
        resources: Mapping[str, Resource] | None = None,
        version: str = "1",
        mode: Literal["standard", "express"] = "standard",
        max_payload_bytes: int = 262144,
        expression_budget: ExpressionBudget | None = None,
        triggers: Sequence[Any] | None = None,
        cancel_on: Sequence[Any] | None = None,
    ) -> None:
        if isinstance(definition, str):
            try:
                definition = json.loads(definition)
            except json.JSONDecodeError as exc:
                raise AslDefinitionError([f"/: the definition is not valid JSON: {exc}"]) from None
        if mode not in ("standard", "express"):
            raise ValueError(f"mode must be 'standard' or 'express', got {mode!r}")
        if expression_budget is not None and not isinstance(expression_budget, ExpressionBudget):
            raise ExpressionBudgetError("expression_budget", expression_budget)
        problems: list[str] = []
        program = compile_program(
            dict(definition) if isinstance(definition, Mapping) else definition, "", problems, "JSONPath", True
        )
        if problems:
            raise AslDefinitionError(problems)
        self.definition: Mapping[str, Any] = definition  # type: ignore[assignment]
        self.program: Program = program
        self.name = name or "state-machine"
        self.resources: dict[str, Resource] = _checked_resources(self.name, resources)
        self.version = version
        self.mode: Literal["standard", "express"] = mode
        self.max_payload_bytes = max_payload_bytes
        if expression_budget is None:
            # A string the input may hold must never count as runaway.
            expression_budget = ExpressionBudget(max_length=max(DEFAULT_MAX_LENGTH, 4 * max_payload_bytes))
        self.expression_budget: ExpressionBudget = expression_budget
        self._items: dict[str, StateMachine] = {}
        # ``[on_event(...)]``: events that start its runs (checked when a runtime registers it).
        self.triggers: tuple[Any, ...] = tuple(triggers or ())
        # ``[on_event(..., match=...)]``: events that cancel its runs (checked likewise).
        self.cancel_on: tuple[Any, ...] = tuple(cancel_on or ())

    def publish(self, version: str) -> StateMachine:
        """This machine as a published version: the same name, definition, resources and
        settings, labelled ``version`` (as Step Functions' PublishStateMachineVersion fixes a
        revision under a version number). Register versions side by side, with a
        `wayline.runtime.StateMachineAlias` to route new runs between them."""
        if not isinstance(version, str) or not version:
            raise ValueError(f"a published version needs a label (a non-empty string), got {version!r}")
        return StateMachine(
            self.definition,
            name=self.name,
            resources=self.resources,
            version=version,
            mode=self.mode,
            max_payload_bytes=self.max_payload_bytes,
            expression_budget=self.expression_budget,
            triggers=self.triggers,
            cancel_on=self.cancel_on,
        )

    @property
    def query_language(self) -> str:
        """The machine's default query language (``JSONPath`` or ``JSONata``)."""
        return self.program.query_language

    def item_machine(self, state: State) -> StateMachine:
        """The machine a distributed Map state runs for each item (built once)."""
        machine = self._items.get(state.where)
        if machine is None:
            assert state.processor is not None
            definition = {k: v for k, v in state.processor.definition.items() if k != "ProcessorConfig"}
            definition["QueryLanguage"] = state.processor.query_language
            machine = StateMachine(
                definition,
                name=f"{self.name}/{state.name}",
                resources=self.resources,
                version=self.version,
                mode=self.mode,
                max_payload_bytes=self.max_payload_bytes,
                expression_budget=self.expression_budget,
            )
            self._items[state.where] = machine
        return machine

    def item_machines(self) -> list[StateMachine]:
        """The machines its distributed Maps run for each item (their own, not nested ones)."""
        return [self.item_machine(st) for st in walk(self.program) if st.type == "Map" and st.distributed]

    def child_targets(self) -> list[tuple[str, str]]:
        """``(state, StateMachineArn)`` of each Task that starts an execution of a machine it
        names literally (not through a path or an expression)."""
        return [(st.name, target) for st in walk(self.program) if (target := _literal_target(st)) is not None]

    @property
    def waits_on_children(self) -> bool:
        """Whether its runs can wait on child runs (``.sync`` Tasks, distributed Maps)."""
        return any(
            (st.type == "Map" and st.distributed)
            or (st.type == "Task" and st.resource.startswith(START_EXECUTION) and st.resource != START_EXECUTION)
            for st in walk(self.program)
        )

    def unbound_resources(self) -> list[str]:
        """One problem per Task whose ``Resource`` has no callable bound (its own, and those of
        the machines its distributed Maps run); empty when every Task can run."""
        problems: list[str] = []
        for st in walk(self.program):
            if st.type != "Task" or st.resource.startswith(START_EXECUTION) or self.resource(st.resource):
                continue
            problems.append(
                f"Task {st.name!r}: no resource is bound to {st.resource!r}; pass it in "
                f"StateMachine(..., resources={{{st.resource!r}: fn}}) with fn an async callable "
                "(from the CLI: --resources MODULE:MAPPING)"
            )
        for machine in self.item_machines():
            problems.extend(machine.unbound_resources())
        return problems

    def resource(self, name: str) -> Resource | None:
        """The callable bound to a Task's ``Resource``, if any (see `find_resource`)."""
        return find_resource(self.resources, name)

    def __repr__(self) -> str:
        return f"StateMachine(name={self.name!r}, version={self.version!r}, mode={self.mode!r})"


def _checked_resources(machine: str, resources: Mapping[str, Resource] | None) -> dict[str, Resource]:
    """``resources`` as a dict, once each is known to be an async callable: a plain function
    would only fail when a run reaches its Task (``object dict can't be used in 'await'``)."""
    if resources is None:
        return {}
    if not isinstance(resources, Mapping):
        problem = f"resources must be a mapping of resource name to async callable, not {resources!r}"
        raise ResourceError(machine, [problem])
    problems: list[str] = []
    for name, fn in resources.items():
        if not isinstance(name, str) or not name:
            problems.append(f"resources[{name!r}]: a resource is named by its ARN or short name (a non-empty string)")
        elif not callable(fn):
            problems.append(f"resources[{name!r}]: {fn!r} is not callable; bind an async function")
        elif not _is_async(fn):
            label = getattr(fn, "__qualname__", None) or repr(fn)
            problems.append(
                f"resources[{name!r}]: {label} is a plain function; Task resources are awaited, so declare it "
                f"`async def`, or wrap a blocking one: `async def f(payload): return await asyncio.to_thread("
                f"{label}, payload)`"
            )
    if problems:
        raise ResourceError(machine, problems)
    return dict(resources)


def _is_async(fn: Any) -> bool:
    """An ``async def`` function (also through ``functools.partial``, a decorator that sets
    ``__wrapped__``, or an object whose ``__call__`` is one)."""
    target = inspect.unwrap(fn)
    call = getattr(type(target), "__call__", None)  # noqa: B004 - its coroutine-ness, not callability
    return inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(call)


def walk(program: Program) -> Iterator[State]:
    """Every state of ``program``, with those of its Parallel branches and inline Map
    processors (a distributed Map's processor is a machine of its own)."""
    for state in program.states.values():
        yield state
        for branch in state.branches:
            yield from walk(branch)
        if state.processor is not None and not state.distributed:
            yield from walk(state.processor)


def _literal_target(state: State) -> str | None:
    """The StateMachineArn a startExecution Task names literally, if it does."""
    if state.type != "Task" or not state.resource.startswith(START_EXECUTION):
        return None
    params = state.raw.get("Arguments" if state.jsonata else "Parameters")
    target = params.get("StateMachineArn") if isinstance(params, dict) else None
    if not isinstance(target, str) or (state.jsonata and is_expression(target)):
        return None
    return target


#: Resource suffixes that select an integration pattern rather than another resource.
PATTERN_SUFFIXES = (".waitForTaskToken", ".sync:2", ".sync")


def find_resource(resources: Mapping[str, Resource], name: str) -> Resource | None:
    """The callable bound to a Task's ``Resource`` (its ARN or short name), trying the name
    without an integration-pattern suffix (``.sync``, ``.waitForTaskToken``) too."""
    fn = resources.get(name)
    if fn is None:
        for suffix in PATTERN_SUFFIXES:
            if name.endswith(suffix):
                return resources.get(name[: -len(suffix)])
    return fn


async def call_resource(fn: Resource, payload: Any, timeout_seconds: float | None) -> Any:
    """Call a Task's resource as AWS reports it: a `StatesError` keeps its name, any other
    exception becomes an error named after its class (as Lambda does), and running past
    ``timeout_seconds`` (real time: resources do real work) is ``States.Timeout``."""
    try:
        if timeout_seconds is None:
            return await fn(payload)
        with anyio.fail_after(timeout_seconds):
            return await fn(payload)
    except TimeoutError:
        raise StatesError("States.Timeout", f"The task did not finish within {timeout_seconds}s") from None
    except StatesError:
        raise
    except Exception as exc:
        raise StatesError(type(exc).__name__, str(exc)) from exc
