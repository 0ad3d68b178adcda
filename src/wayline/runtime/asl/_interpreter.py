"""The interpreter loop, input/output processing, Retry and Catch.

One :class:`Execution` per run holds the host, the event counter and the snapshot. A
*frame* is one running program (the machine, a Parallel branch or a Map iteration); its
record is a plain dict inside the snapshot, so checkpointing never converts anything.
The state types live in _simple.py, _tasks.py and _map.py, above this module; _execute.py,
above them all, hands their table to each `Execution` (so nothing here imports them).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio
import msgspec

from . import _errors as E
from ._errors import StatesError
from ._jsonata import to_json_text
from ._jsonpath import JsonPath, PathNotFound, set_path
from ._states import Catcher, Program, Retrier, State

if TYPE_CHECKING:
    from ._host import AslHost
    from ._machine import StateMachine

__all__ = ("Execution", "Frame", "Handler", "Scope")

_encode = msgspec.json.encode
_NO_CONTEXT: dict[str, Any] = {}
# AWS's documentation says States.ALL does not catch States.DataLimitExceeded, but recorded
# executions show a task's oversized result caught by States.ALL, so only Runtime is exempt.
_UNCATCHABLE = (E.RUNTIME,)

#: How a state type runs: ``(execution, frame, state, input) -> (output, next state or None)``.
Handler = Callable[["Execution", "Frame", State, Any], Awaitable[tuple[Any, str | None]]]

#: ``on_wait(kind, state, step, until)``: a Wait state ("wait") or a Retry interval ("retry") of
#: ``state``, in the visit ``step`` (see `Execution.step_id`), waits until epoch time ``until``.
#: What it returns, if anything, is called when the wait is over.
OnWait = Callable[[str, str, str, float], Callable[[], None] | None]


class Scope:
    """Workflow variables: a frame's own values, then its parent's (read-only)."""

    __slots__ = ("parent", "vars")

    def __init__(self, values: dict[str, Any], parent: Scope | None) -> None:
        self.vars = values
        self.parent = parent

    def lookup(self, name: str) -> Any:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.vars:
                return scope.vars[name]
            scope = scope.parent
        raise KeyError(name)

    def flat(self) -> dict[str, Any]:
        if self.parent is None:
            return self.vars
        out = dict(self.parent.flat())
        out.update(self.vars)
        return out


class Frame:
    """One running program and its snapshot record."""

    __slots__ = ("entered", "label", "program", "rec", "scope")

    def __init__(self, program: Program, rec: dict[str, Any], scope: Scope, label: str) -> None:
        self.program = program
        self.rec = rec
        self.scope = scope
        # A path-like name, "" for the machine itself: "Map/3/" for item 3 of state Map.
        self.label = label
        self.entered = 0


_DETAIL_KEYS: dict[str, str] = {}


def _detail_key(kind: str) -> str:
    if kind.endswith("StateEntered"):
        return "stateEnteredEventDetails"
    if kind.endswith("StateExited"):
        return "stateExitedEventDetails"
    return kind[0].lower() + kind[1:] + "EventDetails"


_iso_cache: list[Any] = [None, ""]


def iso(ts: float) -> str:
    """Format epoch seconds as AWS formats timestamps in the context object."""
    # strftime is the slowest part of building a context object; within one second only
    # the milliseconds change, so the formatted prefix is cached.
    second = int(ts)
    if _iso_cache[0] != second:
        _iso_cache[0] = second
        _iso_cache[1] = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{_iso_cache[1]}.{int((ts - second) * 1000):03d}Z"


class Execution:
    """State shared by all frames of one run."""

    def __init__(
        self,
        machine: StateMachine,
        host: AslHost,
        context: Mapping[str, Any],
        snapshot: dict[str, Any],
        handlers: Mapping[str, Handler],
    ) -> None:
        self.machine = machine
        self.handlers = handlers
        self.host = host
        self.exec_ctx = dict(context["Execution"])
        self.sm_ctx = dict(context["StateMachine"])
        self.snapshot = snapshot
        self.events: list[dict[str, Any]] = []
        self.standard = machine.mode == "standard"
        self.limit = machine.max_payload_bytes
        self.budget = machine.expression_budget
        self.effects = 0
        self._busy = False
        self._idle: anyio.Event | None = None
        self._requested = 0
        self._completed = 0
        # .sync child runs being waited for, by name, with the label of the frame waiting
        # (in memory: a failed Parallel branch or Map item stops its siblings' children).
        self.waiting_children: dict[str, str] = {}
        #: Told of Wait states and Retry intervals (see `execute`'s ``on_wait``).
        self.on_wait: OnWait | None = None

    # ------------------------------------------------------------------ events, checkpoints

    def emit(self, kind: str, details: dict[str, Any] | None = None) -> int:
        snap = self.snapshot
        event_id: int = snap["event_id"] + 1
        snap["event_id"] = event_id
        event: dict[str, Any] = {"id": event_id, "type": kind, "timestamp": self.host.now()}
        if details:
            # Details sit under AWS's key for the event type, e.g.
            # "stateEnteredEventDetails", so a history reads like GetExecutionHistory.
            key = _DETAIL_KEYS.get(kind)
            if key is None:
                key = _DETAIL_KEYS[kind] = _detail_key(kind)
            event[key] = details
        self.events.append(event)
        return event_id

    async def checkpoint(self) -> None:
        """Persist the snapshot; concurrent requests (Map items) share one host call.

        A request made while another checkpoint is in flight waits for it, then one more
        checkpoint covers every request that queued meanwhile: group commit, so a thousand
        items suspending at once cost a handful of checkpoints, not a thousand.
        """
        self._requested += 1
        mine = self._requested
        while self._completed < mine:
            if self._busy:
                # Another item's checkpoint is in flight: the next one will cover us too.
                if self._idle is None:
                    self._idle = anyio.Event()
                await self._idle.wait()
                continue
            # No lock object on the common path: acquiring one costs an event-loop turn.
            self._busy = True
            try:
                target = self._requested
                events, self.events = self.events, []
                await self.host.checkpoint(self.snapshot, events)
                self._completed = target
            finally:
                self._busy = False
                idle, self._idle = self._idle, None
                if idle is not None:
                    idle.set()

    async def sleep_until(self, when: float) -> None:
        """Sleep on the host's durable timer, but no later than the execution's deadline."""
        deadline = self.snapshot.get("deadline")
        if deadline is not None and when >= deadline:
            await self.host.sleep_until(deadline)
            raise execution_timeout()
        await self.host.sleep_until(when)

    def waiting(self, kind: str, frame: Frame, state: State, until: float) -> Callable[[], None] | None:
        """Tell ``on_wait`` that ``state`` waits until ``until`` (``kind``: "wait" or "retry");
        what it returns is called when the wait is over. Called before the checkpoint that
        precedes the wait, so what the observer keeps is in that checkpoint."""
        on_wait = self.on_wait
        return None if on_wait is None else on_wait(kind, state.name, self.step_id(frame, state), until)

    async def suspend_point(self) -> None:
        """Checkpoint before waiting on something external (both modes)."""
        self.effects += 1
        await self.checkpoint()

    def context(self, state: State, retry_count: int = 0) -> dict[str, Any]:
        if not state.uses_context:
            # Nothing in this state reads $$ or $states.context: skip building it.
            return _NO_CONTEXT
        return {
            "Execution": self.exec_ctx,
            "StateMachine": self.sm_ctx,
            "State": {"Name": state.name, "EnteredTime": iso(self.host.now()), "RetryCount": retry_count},
        }

    def check_size(self, state: State, value: Any, label: str | None = None) -> None:
        if len(_encode(value)) > self.limit:
            raise StatesError(
                E.DATA_LIMIT_EXCEEDED,
                f"The state/task '{label or state.name}' returned a result with a size "
                "exceeding the maximum number of bytes service limit.",
            )

    # ------------------------------------------------------------------ the loop

    async def run_frame(self, frame: Frame) -> Any:
        """Run ``frame`` from its current state to its end; return the output.

        Raises:
            StatesError: The frame failed (already prefixed where AWS prefixes).
        """
        rec = frame.rec
        states = frame.program.states
        top = frame.label == ""
        deadline = self.snapshot.get("deadline")
        while True:
            if deadline is not None and self.host.now() >= deadline:
                raise execution_timeout()
            state = states[rec["state"]]
            entered = frame.entered = self.emit(
                state.type + "StateEntered", {"name": state.name, "input": rec["input"]}
            )
            try:
                output, nxt = await self.handlers[state.type](self, frame, state, rec["input"])
            except StatesError as err:
                raise self.located(err, state, entered) from None
            if nxt is None:
                return output
            rec["state"] = nxt
            rec["input"] = output
            rec.pop("retries", None)
            rec.pop("sub", None)
            rec.pop("wake", None)
            rec.pop("token", None)
            rec.pop("invoked", None)
            rec.pop("visit", None)
            if top and self.standard:
                await self.checkpoint()

    def step_id(self, frame: Frame, state: State) -> str:
        """A run-unique, restart-stable id of this visit of ``state``: "Map/3/Work#12"."""
        visit = frame.rec.setdefault("visit", frame.entered)
        return f"{frame.label}{state.name}#{visit}"

    def child_name(self, frame: Frame, state: State, suffix: str) -> str:
        """A deterministic name for a child run started by ``state``.

        It names the visit of the state (a loop may run the same Map twice) by the event id
        that first entered it, kept in the snapshot, so after a restart the host sees the
        same name again and can return the child it already ran. A redriven run starts its
        children afresh, as AWS does, so the redrive count is part of the name.
        """
        visit = frame.rec.setdefault("visit", frame.entered)
        where = frame.label.replace("/", "-")
        redrive = self.exec_ctx.get("RedriveCount") or 0
        again = f"r{redrive}-" if redrive else ""
        return f"{self.exec_ctx.get('Name', 'execution')}-{where}{state.name}-{visit}-{again}{suffix}"

    def located(self, err: StatesError, state: State, entered: int) -> StatesError:
        if getattr(err, "_located", True):
            return err
        located = StatesError(
            err.error,
            f"An error occurred while executing the state '{state.name}' (entered at the "
            f"event id #{entered}). {err.cause}",
        )
        return located

    # ------------------------------------------------------------------ I/O helpers

    def bindings(self, frame: Frame, states: dict[str, Any]) -> dict[str, Any]:
        flat = frame.scope.flat()
        out = dict(flat) if flat else {}
        out["states"] = states
        return out

    def path(self, path: JsonPath | None, data: Any, ctx: Any, frame: Frame) -> Any:
        if path is None:
            return {}
        if path.text == "$":
            return data
        try:
            return path.get(data, ctx, frame.scope.lookup)
        except PathNotFound as exc:
            raise runtime_error(f"Invalid path '{path.text}' : No results for path: {exc.path}") from None

    def apply_result_path(self, path: JsonPath | None, raw: Any, result: Any) -> Any:
        if path is None:
            return raw
        if not path.steps:
            return result
        try:
            return set_path(raw, path, result)
        except ValueError:
            raise evaluation_error(
                E.RESULT_PATH_MATCH_FAILURE,
                f'Unable to apply ResultPath "{path.text}" to input {to_json_text(raw)}',
            ) from None

    def assign(self, frame: Frame, values: Any) -> None:
        if values:
            frame.scope.vars.update(values)


def evaluation_error(error: str, cause: str) -> StatesError:
    """An error raised while processing a state; AWS prefixes its cause with the state."""
    err = StatesError(error, cause)
    err._located = False  # type: ignore[attr-defined]
    return err


def execution_timeout() -> StatesError:
    """The machine's top-level TimeoutSeconds passed: fails the run, nothing catches it."""
    err = StatesError(E.TIMEOUT, "The execution timed out (TimeoutSeconds of the state machine)")
    err._terminal = True  # type: ignore[attr-defined]
    return err


def runtime_error(cause: str) -> StatesError:
    return evaluation_error(E.RUNTIME, cause)


def unlocated(err: StatesError) -> StatesError:
    """Mark an error from template evaluation as needing the state prefix."""
    if not hasattr(err, "_located"):
        err._located = False  # type: ignore[attr-defined]
    return err


# ---------------------------------------------------------------------- JSONPath pipeline


def path_effective_input(ex: Execution, frame: Frame, st: State, raw: Any, ctx: Any) -> Any:
    data = ex.path(st.input_path, raw, ctx, frame)
    if st.parameters is not None:
        data = st.parameters(data, ctx, frame.scope.lookup)
    return data


async def finish_state(ex: Execution, frame: Frame, st: State, raw: Any, result: Any, ctx: Any) -> Any:
    """A state's output from its raw input and its result, in either query language, size-checked."""
    try:
        if st.jsonata:
            out = await ata_finish(ex, frame, st, raw, result, ctx, result)
        else:
            out = path_finish(ex, frame, st, raw, result, ctx)
    except StatesError as err:
        raise unlocated(err) from None
    ex.check_size(st, out)
    return out


def path_finish(ex: Execution, frame: Frame, st: State, raw: Any, result: Any, ctx: Any) -> Any:
    """ResultSelector, Assign, ResultPath, OutputPath: the JSONPath tail of a state."""
    if st.result_selector is not None:
        result = st.result_selector(result, ctx, frame.scope.lookup)
    new_vars = st.assign_path(result, ctx, frame.scope.lookup) if st.assign_path else None
    out = ex.apply_result_path(st.result_path, raw, result)
    out = ex.path(st.output_path, out, ctx, frame)
    ex.assign(frame, new_vars)
    return out


async def ata_finish(
    ex: Execution,
    frame: Frame,
    st: State,
    raw: Any,
    result: Any,
    ctx: Any,
    default: Any,
) -> Any:
    """Output and Assign of a JSONata state, both seeing the values at state entry."""
    if st.output is None and st.assign_ata is None:
        return default
    states = {"input": raw, "context": ctx}
    if result is not NO_RESULT:
        states["result"] = result
    b = ex.bindings(frame, states)
    new_vars = await st.assign_ata(b, ex.budget) if st.assign_ata else None
    out = await st.output(b, ex.budget) if st.output else default
    ex.assign(frame, new_vars)
    return out


NO_RESULT: Any = object()


# ---------------------------------------------------------------------- retry and catch


def matches(errors: tuple[str, ...], error: str | None) -> bool:
    """Whether an ErrorEquals list matches ``error``, with the States.* wildcards."""
    if error == E.RUNTIME:
        # AWS: States.Runtime is never retried or caught; it always fails the run.
        return False
    if error in errors:
        return True
    if error in _UNCATCHABLE:
        return False
    if E.ALL in errors:
        return True
    # AWS: States.TaskFailed matches any error except States.Timeout.
    return E.TASK_FAILED in errors and error != E.TIMEOUT


async def handle_failure(
    ex: Execution, frame: Frame, st: State, raw: Any, err: StatesError, ctx: Any
) -> tuple[Any, str] | None:
    """Apply Retry (sleeping the backoff) or Catch; return the catch outcome, or None to
    retry. Raise the error if neither applies."""
    if getattr(err, "_terminal", False):
        raise err
    rec = frame.rec
    retries: list[int] = rec.setdefault("retries", [0] * len(st.retry))
    for i, retrier in enumerate(st.retry):
        if matches(retrier.errors, err.error):
            if retries[i] < retrier.max_attempts:
                delay = backoff(retrier, retries[i])
                retries[i] += 1
                rec["wake"] = ex.host.now() + delay
                over = ex.waiting("retry", frame, st, rec["wake"])
                await ex.suspend_point()
                await ex.sleep_until(rec["wake"])
                rec.pop("wake", None)
                if over is not None:
                    over()
                return None
            break
    for catcher in st.catch:
        if matches(catcher.errors, err.error):
            return await catch(ex, frame, st, raw, err, catcher, ctx)
    raise err


def backoff(retrier: Retrier, done: int) -> float:
    """Delay before retry number ``done + 1``."""
    delay = retrier.interval * retrier.backoff**done
    if retrier.max_delay is not None:
        delay = min(delay, retrier.max_delay)
    if retrier.jitter == "FULL":
        delay = random.uniform(0, delay)
    return delay


async def catch(
    ex: Execution,
    frame: Frame,
    st: State,
    raw: Any,
    err: StatesError,
    catcher: Catcher,
    ctx: Any,
) -> tuple[Any, str]:
    error_output = {"Error": err.error, "Cause": err.cause}
    try:
        if st.jsonata:
            b = ex.bindings(frame, {"input": raw, "context": ctx, "errorOutput": error_output})
            new_vars = await catcher.assign_ata(b, ex.budget) if catcher.assign_ata else None
            out = await catcher.output(b, ex.budget) if catcher.output else error_output
        else:
            lookup = frame.scope.lookup
            new_vars = catcher.assign_path(error_output, ctx, lookup) if catcher.assign_path else None
            out = ex.apply_result_path(catcher.result_path, raw, error_output)
    except StatesError as e:
        raise unlocated(e) from None
    frame.rec.pop("retries", None)
    ex.assign(frame, new_vars)
    return out, catcher.next
