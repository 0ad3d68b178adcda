"""`RunContext`: what a workflow body sees of its run."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, NoReturn, ParamSpec, TypeVar, overload

from .._errors import ContinueAsNew, InvalidArgumentError
from ..actors import Clock
from . import _checks as check
from ._child_handle import ChildHandle
from ._commands import (
    PARENT_CLOSE,
    AwaitCallback,
    CloseCallback,
    Decoded,
    Gather,
    OpenCallback,
    Sleep,
    StartChild,
    Step,
    WaitSignal,
    WaitUpdate,
)
from ._definitions import as_activity
from ._event_wait import wait as wait_event
from ._metadata import RunMetadata
from ._triggers import Event
from ._update import Update

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


class RunContext:
    """Handed to every workflow body.

    Attributes:
        run_id: this run's id.
        workflow: the workflow's name; ``version`` its version.
        vars: the run's variables: any JSON-like values, checkpointed with every step and
            shown by ``rt.describe``. After a restart they hold their checkpointed values
            once the body has replayed its journaled steps. With ``@workflow(vars=T)`` they are
            a ``T`` (made with its defaults), checked before every checkpoint (`VarsError`).
        metadata: the run's metadata (`RunMetadata`): the entries given to ``rt.start`` or
            inherited from a parent run, and the runtime's own (read-only). Entries set here
            (str, int, float or bool values) are checkpointed with the next step and make
            the run findable with ``rt.list_runs(metadata={...})``.
        tags: the run's tags, as given to ``rt.start`` or inherited.
    """

    __slots__ = (
        "_clock",
        "_events",
        "_events_taken",
        "_patched",
        "metadata",
        "run_id",
        "saved_state",
        "started_at",
        "tags",
        "vars",
        "version",
        "workflow",
    )

    def __init__(self, run_id: str, workflow: str, version: str, clock: Clock) -> None:
        self.run_id = run_id
        self.workflow = workflow
        self.version = version
        # Any: a dict, or an instance of the workflow's ``vars=`` type.
        self.vars: Any = {}
        self.metadata = RunMetadata({}, run_id)
        self.tags: tuple[str, ...] = ()
        self._clock = clock
        self.started_at = 0.0  # when the run was created (epoch seconds)
        self.saved_state: Any = None  # a state machine's own checkpointed state
        #: Answers `patched` from the run's state (bound when the run is restored).
        self._patched: Callable[[str], bool] | None = None
        #: The store's events table (bound when the run is loaded), and the seqs of the
        #: events this run's waits took (rebuilt as the body replays).
        self._events: Any = None
        self._events_taken: list[int] = []

    def now(self) -> float:
        """The runtime clock's time (epoch seconds); virtual under a `VirtualClock`."""
        return self._clock.time()

    def patched(self, change: str) -> bool:
        """Whether this run takes the new branch of code change ``change``.

        Wrap a change to a workflow whose runs are in flight in ``if ctx.patched("id"):``
        (new steps) ``else:`` (the old ones). A run that reaches this point for the first time
        gets True, and the answer is journaled; a run that had already gone past this point
        before the call existed gets False while it replays, so it takes the steps it took
        then (no `NonDeterminismError`). The answer is the same for the rest of the run.

        Once no run that started before the change is in flight (``wayline runs list
        --status RUNNING,WAITING``), remove the old branch and the call.
        """
        if not isinstance(change, str) or not change:
            raise ValueError(f"ctx.patched needs a change id (a non-empty string), got {change!r}")
        if self._patched is None:
            raise RuntimeError("ctx.patched is answered by a running workflow body only")
        return self._patched(change)

    def run(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> Step[R]:
        """Run ``fn(*args, **kwargs)`` as one durable step; await the result.

        The result is checkpointed before this returns; after a restart the same step returns
        the checkpointed result without running again. A step that fails for good raises
        `ActivityError` here.
        """
        return Step(as_activity(fn), args, kwargs)

    def gather(self, *steps: Step[Any]) -> Gather:
        """Run the given ``ctx.run(...)`` steps concurrently; a list of results in order."""
        for s in steps:
            if not isinstance(s, Step):
                raise TypeError(f"ctx.gather takes ctx.run(...) steps, got {s!r}")
        return Gather(tuple(steps), max_concurrency=None, tolerated=0)

    def map(
        self,
        fn: Callable[[Any], Awaitable[Any]],
        items: Iterable[Any],
        *,
        max_concurrency: int | None = None,
        tolerated_failure_percentage: float = 0.0,
        tolerated_failure_count: int = 0,
    ) -> Gather:
        """Run ``fn(item)`` as one step per item, at most ``max_concurrency`` at a time.

        Up to the tolerated failures (the larger of the count and the percentage of items),
        a failed item's result is ``{"error": ..., "cause": ...}``; beyond it the map raises
        the first `ActivityError`.
        """
        act = as_activity(fn)
        steps = tuple(Step(act, (item,), {}) for item in items)
        check.count("ctx.map", "max_concurrency", max_concurrency)
        if max_concurrency is not None and max_concurrency < 1:
            raise ValueError("ctx.map max_concurrency must be >= 1 (or None for no limit)")
        tolerated = max(tolerated_failure_count, math.floor(len(steps) * tolerated_failure_percentage / 100))
        return Gather(steps, max_concurrency=max_concurrency, tolerated=tolerated)

    @overload
    def wait_signal(self, name: str, *, timeout: float | None = None) -> WaitSignal: ...
    @overload
    def wait_signal(self, name: str, type: type[T], *, timeout: float | None = None) -> Decoded[T]: ...
    def wait_signal(self, name: str, type: Any = None, *, timeout: float | None = None) -> WaitSignal | Decoded[Any]:
        """Wait for the next signal ``name`` sent with ``rt.signal``; returns its payload.

        With ``type`` (``ctx.wait_signal("verdict", Verdict)``), the payload is decoded as that
        type (msgspec, as a workflow's input: a Struct, a dataclass, ``date``, ``Decimal``...)
        and type checkers know what it returns; a payload that does not match raises
        `SignalPayloadError` here.

        Signals sent before the run waits are kept for it, in order. The wait is journaled:
        after a restart it returns the same payload. With ``timeout`` (seconds, a durable
        deadline) it raises `SignalTimeoutError`, which the workflow may catch.
        """
        check.name("ctx.wait_signal", "name", name)  # it is journaled: a bad one is stored for good
        check.number("ctx.wait_signal", "timeout", timeout)
        if timeout is not None and timeout < 0:
            raise ValueError("ctx.wait_signal timeout must be >= 0 seconds (or None to wait forever)")
        command = WaitSignal(name, timeout)
        return command if type is None else Decoded(command, type, self.run_id)

    async def wait_for_event(
        self,
        name: str,
        *,
        match: Mapping[str, Any] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - a durable deadline, not asyncio's
    ) -> Event:
        """Wait for an event ``name`` (sent with ``rt.send_event``) whose data holds every
        value of ``match`` at its path (``{"order_id": oid}``, dotted paths for nested keys);
        returns the `Event`.

        It sees every matching event accepted since this run was created, including those
        sent before the wait began: nothing is lost between the run's start and its wait.
        Each event answers one wait of the run; a second wait gets the next matching event.
        The wait is indexed by name and match values, so a run that left memory is woken
        without loading every waiting run. Journaled: after a restart it returns the same
        event. With ``timeout`` (seconds, a durable deadline) it raises `EventTimeoutError`,
        which the workflow may catch.
        """
        call = "ctx.wait_for_event"
        check.name(call, "name", name)
        check.number(call, "timeout", timeout)
        if timeout is not None and timeout < 0:
            check.refuse(call, "timeout", f"must be >= 0 seconds (or None to wait forever), got {timeout!r}")
        if match is not None and not isinstance(match, Mapping):
            check.refuse(call, "match", f"must be a dict of path to value, got {match!r}")
        for path, value in (match or {}).items():
            if not isinstance(path, str) or not path:
                check.refuse(call, "match", f"keys are paths into the event's data (strings), got {path!r}")
            if not isinstance(value, (str, int, float, bool)) and value is not None:
                check.refuse(call, "match", f"values are str, int, float, bool or None; {path!r} is {value!r}")
        return await wait_event(
            self._events,
            self._clock.time,
            run_id=self.run_id,
            since=self.started_at,
            taken=self._events_taken,
            name=name,
            match=match or {},
            timeout=timeout,
        )

    async def wait_for_callback(
        self,
        fn: Callable[..., Awaitable[Any]],
        /,
        *args: Any,
        timeout: float | None = None,  # noqa: ASYNC109 - a durable deadline, not asyncio's
        heartbeat_timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        """Hand out a callback token and wait until something outside completes it.

        Runs ``fn(token, *args, **kwargs)`` as a durable step (retried as its `RetryPolicy`
        says) to send the token away (an email link, a queue message, a ticket...), then waits
        for ``rt.complete_callback(token, output)``, which makes this return ``output``.
        ``rt.fail_callback(token, error, cause)`` makes it raise `CallbackError` with that
        error; so does ``timeout`` (seconds for the whole wait: ``"States.Timeout"``) and
        ``heartbeat_timeout`` (seconds allowed between ``rt.heartbeat(token)`` calls:
        ``"States.HeartbeatTimeout"``). The wait is registered (and durable) before ``fn``
        runs, so a completion that comes back before ``fn`` returns is not lost. Each token
        completes once; a later completion is rejected with `CallbackTokenError`.
        """
        for what, value in (("timeout", timeout), ("heartbeat_timeout", heartbeat_timeout)):
            check.number("ctx.wait_for_callback", what, value)
            if value is not None and not value > 0:
                raise ValueError(f"ctx.wait_for_callback {what} must be > 0 seconds (or None for no limit)")
        act = as_activity(fn)
        index, token = await OpenCallback(act.name, timeout, heartbeat_timeout)
        try:
            await Step(act, (token, *args), kwargs)
        except GeneratorExit:
            raise
        except BaseException:
            await CloseCallback(index)  # the token never left: nothing can complete it
            raise
        return await AwaitCallback(index)

    def sleep(self, seconds: float) -> Sleep:
        """A durable timer: the run resumes after ``seconds``, even across a restart."""
        check.number("ctx.sleep", "seconds", seconds, optional=False)
        return Sleep(self._clock.time() + max(0.0, seconds))

    def sleep_until(self, when: datetime) -> Sleep:
        """A durable timer until ``when`` (a timezone-aware datetime)."""
        if not isinstance(when, datetime):
            check.refuse("ctx.sleep_until", "when", f"must be a timezone-aware datetime, got {when!r}")
        if when.tzinfo is None:
            raise ValueError("ctx.sleep_until needs a timezone-aware datetime (e.g. tzinfo=UTC)")
        return Sleep(when.timestamp())

    async def start_workflow(
        self,
        workflow: Any,
        input: Any = None,
        /,
        *,
        run_id: str | None = None,
        parent_close: str = "terminate",
    ) -> ChildHandle[Any]:
        """Start a child run of ``workflow`` (a registered ``@workflow``, `StateMachine`, or
        its name) with ``input``; returns its `ChildHandle` once the child exists.

        The start is journaled: a parent restarted after a crash gets the same child back and
        never starts a second one. ``run_id`` defaults to ``"<parent run id>/<position>"``;
        a given one must be the same on every replay (derive it from ``ctx.run_id`` or the
        input, not from the clock or randomness). The child's end reaches the parent through
        its durable inbox, so the parent may leave memory while it waits.

        ``parent_close`` says what happens to the child if the parent ends before it:
        "terminate" (the default: it ends cancelled at once), "request_cancel" (it is
        cancelled and its body may clean up) or "abandon" (it goes on).

        Raises:
            WorkflowNotFoundError: ``workflow`` is not registered in this runtime.
            RunConflictError: ``run_id`` is a run of another workflow.
        """
        name = workflow if isinstance(workflow, str) else getattr(workflow, "name", None)
        if not isinstance(name, str) or not name:
            raise InvalidArgumentError(
                "ctx.start_workflow",
                "workflow",
                f"must be a @workflow, a StateMachine or a workflow name, got {workflow!r}",
            )
        if parent_close not in PARENT_CLOSE:
            raise InvalidArgumentError(
                "ctx.start_workflow", "parent_close", f"must be one of {PARENT_CLOSE}, got {parent_close!r}"
            )
        if run_id is not None and (not isinstance(run_id, str) or not run_id or run_id == self.run_id):
            raise InvalidArgumentError(
                "ctx.start_workflow", "run_id", f"must be a non-empty string other than the parent's, got {run_id!r}"
            )
        _, child = await StartChild(name, input, run_id, parent_close)
        return ChildHandle(child, name)

    async def run_workflow(
        self,
        workflow: Any,
        input: Any = None,
        /,
        *,
        run_id: str | None = None,
        parent_close: str = "terminate",
    ) -> Any:
        """Start a child run (as `start_workflow`) and return its output once it ends.

        Raises:
            RunFailed: the child failed.
            RunCancelled: the child was cancelled.
        """
        child = await self.start_workflow(workflow, input, run_id=run_id, parent_close=parent_close)
        return await child.result()

    def continue_as_new(self, input: Any = None, /, *, version: str | None = None) -> NoReturn:
        """End this segment of the run and go on from the top of the body with ``input``:
        the same run id, empty ``vars``, a fresh journal and history. Raises `ContinueAsNew`
        (do not catch it).

        For runs that never end (a loop over months of signals, a poller): each segment's
        history stays as short as one iteration, so memory and storage stay flat. Signals
        (and other inbox messages) the run has not consumed yet carry over to the next
        segment; steps in flight, timers and callback tokens do not, and the children it
        started get their ``parent_close`` policy as when a run ends.

        The next segment replays nothing of this one, so it runs the newest registered
        version of the workflow, as a new run would: a long-lived run picks up new code at
        its next continuation. A run pinned to its version (started with ``version=`` or
        as ``"<name>:<version>"``, or by a schedule with ``version=``) keeps it. ``version``
        overrides both: ``version=ctx.version`` stays, a label moves to that version.

        A ``version`` that is not registered fails the run with `VersionNotFoundError`.

        Raises:
            InvalidArgumentError: ``version`` is not a non-empty string.
        """
        if version is not None and (not isinstance(version, str) or not version):
            raise InvalidArgumentError(
                "ctx.continue_as_new", "version", f"must be a version label (a non-empty string), got {version!r}"
            )
        raise ContinueAsNew(input, version)

    async def wait_update(self, name: str) -> Update:
        """Wait for the next ``rt.update(run_id, name, payload)``; returns the `Update`, which
        the body answers with ``await upd.reply(value)`` or ``await upd.reject(error)``.

        Updates sent before the run waits are kept for it, in order. Taking one is journaled
        (a restart takes the same one again), and so is the answer.
        """
        if not isinstance(name, str) or not name:
            raise InvalidArgumentError("ctx.wait_update", "name", f"must be a non-empty string, got {name!r}")
        update_id, payload = await WaitUpdate(name)
        return Update(update_id, name, payload)
