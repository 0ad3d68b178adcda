"""``@workflow``, ``@activity`` and ``RetryPolicy``: how users declare what runs durably."""

from __future__ import annotations

import asyncio
import contextvars
import copy
import functools
import inspect
import random
import typing
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, Literal, ParamSpec, Protocol, TypeVar, overload

from .._errors import FlowSpecError, ScheduleSpecError
from . import _checks as check
from ._flow_spec import Concurrency, Debounce, FlowSpec, RateLimit, Singleton, Throttle, check_key_function
from ._retention import retention_seconds
from ._schedule_spec import Schedule
from ._threads import DEFAULT_ACTIVITY_THREADS as DEFAULT_ACTIVITY_THREADS, ActivityThreads
from ._triggers import EventTrigger, check_cancel_on, check_triggers
from ._vars import VarsSchema

P = ParamSpec("P")
R = TypeVar("R")
I = TypeVar("I")  # noqa: E741 - a workflow's input type


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a failed step is retried.

    Attempt ``n`` (counting from 1) that fails is followed, if ``n < max_attempts`` and the
    error is retryable, by attempt ``n + 1`` after ``interval * backoff_rate ** (n - 1)``
    seconds, capped at ``max_delay``; ``jitter="full"`` draws the delay uniformly from
    ``[0, that]`` (spreads retries of many runs that failed together).

    Attributes:
        non_retryable: exception types (or their names, for errors raised in other
            processes) that fail the step at once.
    """

    max_attempts: int = 3
    interval: float = 1.0
    backoff_rate: float = 2.0
    max_delay: float | None = None
    jitter: Literal["full", "none"] = "none"
    non_retryable: tuple[type[BaseException] | str, ...] = ()

    def __post_init__(self) -> None:
        call = "RetryPolicy"
        check.count(call, "max_attempts", self.max_attempts, optional=False)
        check.number(call, "interval", self.interval, optional=False)
        check.number(call, "backoff_rate", self.backoff_rate, optional=False)
        check.number(call, "max_delay", self.max_delay)
        if isinstance(self.non_retryable, list):  # a list reads as naturally; kept as a tuple
            object.__setattr__(self, "non_retryable", tuple(self.non_retryable))
        if not isinstance(self.non_retryable, tuple) or not all(
            isinstance(e, str) or (isinstance(e, type) and issubclass(e, BaseException)) for e in self.non_retryable
        ):
            check.refuse(
                call, "non_retryable", f"must be a tuple of exception types or names, got {self.non_retryable!r}"
            )
        if self.max_attempts < 1:
            raise ValueError(f"RetryPolicy.max_attempts must be >= 1, got {self.max_attempts}")
        if self.interval < 0 or self.backoff_rate < 1:
            raise ValueError("RetryPolicy needs interval >= 0 and backoff_rate >= 1")
        if self.max_delay is not None and self.max_delay < 0:
            raise ValueError("RetryPolicy.max_delay must be >= 0")
        if self.jitter not in ("full", "none"):
            raise ValueError(f"RetryPolicy.jitter must be 'full' or 'none', got {self.jitter!r}")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based) before the next one."""
        d = self.interval * self.backoff_rate ** (attempt - 1)
        if self.max_delay is not None:
            d = min(d, self.max_delay)
        if self.jitter == "full":
            d = random.uniform(0.0, d)
        return d

    def retryable(self, exc: BaseException) -> bool:
        for item in self.non_retryable:
            if isinstance(item, str):
                if type(exc).__name__ == item:
                    return False
            elif isinstance(exc, item):
                return False
        return True


#: Steps are not retried unless they say so (as in Step Functions): a retry repeats a side
#: effect, and that should be a decision, not a default.
NO_RETRY = RetryPolicy(max_attempts=1)


class _Unset:
    """The default of an option that was not given (None means "no timeout")."""

    def __repr__(self) -> str:
        return "<unset>"


UNSET: Any = _Unset()


class ActivityDef(Generic[P, R]):
    """A step function declared with ``@activity`` (``async def`` or plain ``def``); calling
    it directly just runs it.

    A plain ``def`` activity runs in the runtime's worker threads (``open_runtime(...,
    activity_threads=N)``), with the same retries and timeouts as an async one. A thread
    cannot be interrupted: when an attempt times out or its run is cancelled, the run goes on
    at once and the thread's eventual result is discarded.

    Attributes:
        name: the step's name in the journal and history.
        retry: its `RetryPolicy`; ``timeout``: seconds per attempt (None: no limit).
        blocking: True for a plain ``def`` (it runs in a worker thread).
    """

    def __init__(
        self, fn: Callable[P, Awaitable[R]] | Callable[P, R], *, name: str, retry: RetryPolicy, timeout: float | None
    ) -> None:
        if not callable(fn) or inspect.isclass(fn):
            raise TypeError(f"@activity needs a function (async def or def), got {fn!r}")
        if inspect.isasyncgenfunction(fn) or inspect.isgeneratorfunction(fn):
            raise TypeError(f"@activity needs a function that returns its result, not a generator: {fn!r}")
        if timeout is not None and timeout <= 0:
            raise ValueError(f"activity {name!r}: timeout must be > 0 seconds, got {timeout}")
        self.fn: Callable[..., Any] = fn
        self.name = name
        self.retry = retry
        self.timeout = timeout
        self.blocking = not _is_async(fn)
        # What a journaled result is decoded back into on replay (a Struct, a tuple...).
        self.result_type: Any = _hint(fn, "return")
        self.__wrapped__ = fn
        self.__doc__ = fn.__doc__

    def __repr__(self) -> str:
        return f"<activity {self.name!r}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Awaitable[R]:
        return self.fn(*args, **kwargs)  # type: ignore[no-any-return]

    def options(
        self, *, retry: RetryPolicy | None = None, timeout: float | None = UNSET, name: str | None = None
    ) -> ActivityDef[P, R]:
        """This activity with other settings for one call site, e.g.
        ``await ctx.run(charge.options(retry=RetryPolicy(max_attempts=5), timeout=30), order)``.

        The options are keyword arguments of this method, not of the call, so they never
        clash with the activity's own arguments. What is not given keeps the decorator's
        setting; ``timeout=None`` removes the timeout.

        Args:
            retry: the retry policy of this call.
            timeout: seconds one attempt of this call may run (None: no limit).
            name: the step's name in the journal and history. Like any step name it must
                stay the same for runs in flight to replay.

        Raises:
            InvalidArgumentError: an option of the wrong type or value.
        """
        call = f"{self.name}.options"
        if retry is not None and not isinstance(retry, RetryPolicy):
            check.refuse(call, "retry", f"must be a RetryPolicy, got {type(retry).__name__} {retry!r}")
        if timeout is not UNSET:
            check.number(call, "timeout", timeout)
            if timeout is not None and timeout <= 0:
                check.refuse(call, "timeout", f"must be > 0 seconds (or None for no limit), got {timeout!r}")
        check.name(call, "name", name, optional=True)
        other = copy.copy(self)
        if retry is not None:
            other.retry = retry
        if timeout is not UNSET:
            other.timeout = timeout
        if name is not None:
            other.name = name
        return other

    def start(self, threads: Executor | None, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Awaitable[Any]:
        """One attempt: the coroutine of an async activity, or a sync one's call in ``threads``
        (the loop's default executor if None), with `step_info()` working inside it."""
        if not self.blocking:
            return self.fn(*args, **kwargs)  # type: ignore[no-any-return]
        return self._in_thread(threads, functools.partial(contextvars.copy_context().run, self.fn, *args, **kwargs))

    @staticmethod
    async def _in_thread(threads: Executor | None, call: Callable[[], Any]) -> Any:
        counted = threads if isinstance(threads, ActivityThreads) else None
        if counted is not None:
            counted.busy += 1  # a VirtualClock waits for it (see ActivityThreads)
        try:
            result = await asyncio.get_running_loop().run_in_executor(threads, call)
        finally:
            if counted is not None:
                counted.busy -= 1  # done, or given up on (timeout, cancel): the run goes on
        if inspect.isawaitable(result):  # a plain function that returns a coroutine (a lambda)
            result = await result
        return result


def _is_async(fn: Any) -> bool:
    """An ``async def`` function (also through ``functools.partial``, a decorator that sets
    ``__wrapped__``, or an object whose ``__call__`` is one)."""
    target = inspect.unwrap(fn)
    call = getattr(type(target), "__call__", None)  # noqa: B004 - its coroutine-ness, not callability
    return inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(call)


class WorkflowDef(Generic[I, R]):
    """A workflow declared with ``@workflow``: ``fn(ctx)`` or ``fn(ctx, input)``."""

    #: "code" bodies are stepped by the run actor and replayed from the journal; other kinds
    #: (an ASL interpreter) are awaited directly and resume from their own saved state.
    kind = "code"

    def __init__(
        self,
        fn: Callable[..., Awaitable[R]],
        *,
        name: str,
        version: str,
        schedules: Sequence[Schedule] = (),
        vars: Any = None,
        retention: float | timedelta | None = None,
        validators: Mapping[str, Callable[[Any], Any]] | None = None,
        triggers: Sequence[EventTrigger] | None = None,
        concurrency: Concurrency | None = None,
        priority: Callable[[Any], int] | None = None,
        singleton: Singleton | None = None,
        idempotency_key: Callable[[Any], Any] | None = None,
        on_failure: WorkflowDef[Any, Any] | None = None,
        rate_limit: RateLimit | None = None,
        cancel_on: Sequence[EventTrigger] | None = None,
        throttle: Throttle | None = None,
        debounce: Debounce | None = None,
    ) -> None:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"@workflow needs an async function, got {fn!r}")
        params = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        if not 1 <= len(params) <= 2:
            raise TypeError(f"workflow {name!r} must take (ctx) or (ctx, input), not {len(params)} arguments")
        self.fn = fn
        self.name = name
        self.version = version
        self.schedules = _check_schedules(name, schedules)
        #: The type of ``ctx.vars`` (``vars=``), None for a plain dict.
        self.vars_schema = VarsSchema(name, vars) if vars is not None else None
        #: Seconds a finished run is kept before the background purge deletes it (None: the
        #: runtime's ``retention=``, which by default keeps runs forever).
        self.retention = retention_seconds(retention, f"workflow {name!r} retention")
        self.validators = _check_validators(name, validators or {})
        #: The events that start its runs (``triggers=[on_event(...)]``).
        self.triggers = check_triggers(f"@workflow {name!r}", triggers)
        #: The events that cancel its unfinished runs (``cancel_on=[on_event(..., match=...)]``).
        self.cancel_on = check_cancel_on(f"@workflow {name!r}", cancel_on)
        #: Its flow control (``concurrency=``, ``throttle=``, ``debounce=``, ...), None without.
        controlled = any(x is not None for x in (concurrency, priority, singleton, rate_limit, throttle, debounce))
        self.flow = (
            FlowSpec(name, concurrency, priority, singleton, rate_limit, throttle, debounce) if controlled else None
        )
        check_key_function(name, "idempotency_key", idempotency_key)
        if debounce is not None and idempotency_key is not None:
            raise FlowSpecError(
                name,
                "declare debounce= or idempotency_key=, not both: a debounce already makes one run per key and "
                "burst, and its run id is the first start's; give Debounce the key instead",
            )
        #: Gives a run started without a run id (or by an event) the id ``<name>@key:<key>``.
        self.idempotency_key = idempotency_key
        if on_failure is not None and not isinstance(on_failure, WorkflowDef):
            raise TypeError(f"workflow {name!r}: on_failure= takes a @workflow, got {on_failure!r}")
        #: Started when a run of this workflow fails for good (register it too).
        self.on_failure = on_failure
        self.takes_input = len(params) == 2
        self.input_type: Any = _hint(fn, params[1].name) if self.takes_input else Any
        self.__wrapped__ = fn
        self.__doc__ = fn.__doc__

    def __repr__(self) -> str:
        return f"<workflow {self.name!r} v{self.version}>"

    def body(self, ctx: Any, input: Any) -> Coroutine[Any, Any, R]:
        """The body's coroutine for a run: ``fn(ctx, input)`` or ``fn(ctx)`` (``ctx``: the
        run's `RunContext`, not named here so that the context may import this module)."""
        coro: Coroutine[Any, Any, R] = self.fn(ctx, input) if self.takes_input else self.fn(ctx)
        return coro


def _check_schedules(workflow: str, schedules: Sequence[Schedule]) -> tuple[Schedule, ...]:
    """The declared schedules, each with an id of its own (the workflow's name by default)."""
    given = tuple(schedules)
    seen: set[str] = set()
    for schedule in given:
        if not isinstance(schedule, Schedule):
            raise ScheduleSpecError(
                None, f"workflow {workflow!r}: schedules= takes Schedule(...) objects, got {schedule!r}"
            )
        sid = schedule.id or workflow
        if sid in seen:
            raise ScheduleSpecError(
                sid, f"workflow {workflow!r} declares two schedules with this id; give each Schedule its own id="
            )
        seen.add(sid)
    return given


def _hint(fn: Callable[..., Any], name: str) -> Any:
    """The annotation ``name`` of ``fn`` resolved to a type, or Any if absent or unresolvable."""
    try:
        return typing.get_type_hints(fn).get(name, Any)
    except Exception:
        return Any


def _default_name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", getattr(fn, "__name__", repr(fn)))


class _ActivityDecorator(Protocol):
    """What ``@activity(name=..., retry=..., timeout=...)`` returns: typed like bare ``@activity``."""

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> ActivityDef[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R], /) -> ActivityDef[P, R]: ...


# Typing only: an async function's result type is what it returns, not its coroutine; a
# plain function's is its return type. (Coroutine, not Awaitable, in the first overload: with
# Awaitable, mypy finds both overloads match an async function and gives up with Any.)
@overload
def activity(fn: Callable[P, Coroutine[Any, Any, R]], /) -> ActivityDef[P, R]: ...
@overload
def activity(fn: Callable[P, R], /) -> ActivityDef[P, R]: ...
@overload
def activity(
    *, name: str | None = None, retry: RetryPolicy | None = None, timeout: float | None = None
) -> _ActivityDecorator: ...
def activity(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    retry: RetryPolicy | None = None,
    timeout: float | None = None,
) -> ActivityDef[Any, Any] | _ActivityDecorator:
    """Declare a step: ``@activity`` or ``@activity(name=..., retry=..., timeout=...)``.

    An ``async def`` runs on the event loop; a plain ``def`` (a blocking client, a file
    operation) runs in the runtime's worker threads (see `ActivityDef`). Per-call settings:
    ``ctx.run(fn.options(retry=..., timeout=..., name=...), *args)``.

    Args:
        name: the step's name in the journal and history (default: the function's qualname).
            Renaming a step breaks replay of runs in flight, so a stable explicit name is wise.
        retry: retry policy for failed attempts (default: no retry).
        timeout: seconds one attempt may run (start to close) before it fails with
            `ActivityTimeoutError` (retried like any error).
    """

    def wrap(f: Callable[..., Any]) -> ActivityDef[Any, Any]:
        return ActivityDef(f, name=name or _default_name(f), retry=retry or NO_RETRY, timeout=timeout)

    return wrap(fn) if fn is not None else wrap


class _WorkflowDecorator(Protocol):
    """What ``@workflow(name=..., version=...)`` returns: typed like bare ``@workflow``."""

    @overload
    def __call__(self, fn: Callable[[Any, I], Awaitable[R]], /) -> WorkflowDef[I, R]: ...
    @overload
    def __call__(self, fn: Callable[[Any], Awaitable[R]], /) -> WorkflowDef[None, R]: ...


# Typing only: a body that takes (ctx) is a WorkflowDef[None, R] and one that takes
# (ctx, input: X) a WorkflowDef[X, R], so `rt.start` accepts exactly X and `handle.result()`
# is an R. The runtime itself looks at the signature (see WorkflowDef.__init__). The context
# is Any here: RunContext's module imports this one, and imports only go one way.
@overload
def workflow(fn: Callable[[Any, I], Awaitable[R]], /) -> WorkflowDef[I, R]: ...
@overload
def workflow(fn: Callable[[Any], Awaitable[R]], /) -> WorkflowDef[None, R]: ...
@overload
def workflow(
    *,
    name: str | None = None,
    version: str = "1",
    schedules: Sequence[Schedule] = (),
    vars: Any = None,
    retention: float | timedelta | None = None,
    validators: Mapping[str, Callable[[Any], Any]] | None = None,
    triggers: Sequence[EventTrigger] | None = None,
    concurrency: Concurrency | None = None,
    priority: Callable[[Any], int] | None = None,
    singleton: Singleton | None = None,
    idempotency_key: Callable[[Any], Any] | None = None,
    on_failure: WorkflowDef[Any, Any] | None = None,
    rate_limit: RateLimit | None = None,
    cancel_on: Sequence[EventTrigger] | None = None,
    throttle: Throttle | None = None,
    debounce: Debounce | None = None,
) -> _WorkflowDecorator: ...
def workflow(
    fn: Callable[..., Awaitable[Any]] | None = None,
    /,
    *,
    name: str | None = None,
    version: str = "1",
    schedules: Sequence[Schedule] = (),
    vars: Any = None,
    retention: float | timedelta | None = None,
    validators: Mapping[str, Callable[[Any], Any]] | None = None,
    triggers: Sequence[EventTrigger] | None = None,
    concurrency: Concurrency | None = None,
    priority: Callable[[Any], int] | None = None,
    singleton: Singleton | None = None,
    idempotency_key: Callable[[Any], Any] | None = None,
    on_failure: WorkflowDef[Any, Any] | None = None,
    rate_limit: RateLimit | None = None,
    cancel_on: Sequence[EventTrigger] | None = None,
    throttle: Throttle | None = None,
    debounce: Debounce | None = None,
) -> WorkflowDef[Any, Any] | _WorkflowDecorator:
    """Declare a workflow: ``@workflow`` or ``@workflow(name=..., version=..., schedules=[...])``.

    ``version`` labels the code: several versions of one name may be registered side by side,
    each run resuming on its own (see `wayline.runtime.version_key` for which is newest).
    ``schedules`` declares `Schedule`s that start runs of it; an owning runtime makes the
    stored schedules match them when it opens. ``vars`` types ``ctx.vars``: a msgspec Struct,
    dataclass or TypedDict whose fields all have defaults; the vars are checked before each
    checkpoint and a field that does not fit raises `VarsError` naming it (see
    `wayline.runtime._vars`). ``retention`` (seconds or a timedelta) is how long its
    finished runs are kept before the runtime purges them (by default the runtime's
    ``retention=``, which by default keeps them).

    The function takes a `RunContext` and optionally one input value. It is re-entered from
    the top after a crash; completed steps then return their journaled results, so only the
    names and order of its steps must stay stable. For type checkers, the input's annotation
    is what ``rt.start`` accepts and the return annotation is what ``handle.result()`` gives.

    ``validators`` maps an update name to a plain function of the update's payload that
    raises to refuse it: ``rt.update`` calls it before anything is written, and a refusal
    raises `UpdateRejectedError` to the caller with the run untouched.

    ``triggers`` (``[on_event("order/created", where=...)]``) start a run for each matching
    event ``rt.send_event`` accepts, with the `Event` as its input (see `on_event`).

    ``concurrency`` (`Concurrency`) caps the runs executing at once, per key: the others are
    QUEUED durably and start as slots free, highest ``priority`` first (a plain function of
    the input, or the `Event`, returning an int in -100..100), then oldest first.
    ``singleton`` (`Singleton`) allows one run per key at a time. ``idempotency_key`` (a plain
    function of the input or `Event`) makes a run started without a run id, or by an event,
    ``"<name>@key:<key>"``: one run per key while it is kept. ``on_failure`` (another
    registered workflow) is started, as ``"<handler>@failure:<run id>"`` with ``{"run_id",
    "workflow", "error", "cause", "input"}``, when a run fails for good. ``rate_limit``
    (`RateLimit`) drops starts beyond a number per period and key (`RateLimitedError`).

    ``cancel_on`` (``[on_event("order/cancelled", match="order_id")]``) cancels the
    unfinished runs whose input ``match`` relates to an event ``rt.send_event`` accepts (see
    `on_event`): a QUEUED run ends CANCELLED without starting, any other as ``rt.cancel``
    ends it, with the reason ``"cancelled by event '<name>' (id <id>)"``.
    ``throttle`` (`Throttle`) queues them instead, and starts them as its pace allows.
    ``debounce`` (`Debounce`) makes one run of a burst of starts per key, with the last input.
    A run passes its debounce, then its throttle, then its concurrency limit.
    """

    def wrap(f: Callable[..., Awaitable[Any]]) -> WorkflowDef[Any, Any]:
        return WorkflowDef(
            f,
            name=name or _default_name(f),
            version=version,
            schedules=schedules,
            vars=vars,
            retention=retention,
            validators=validators,
            triggers=triggers,
            concurrency=concurrency,
            priority=priority,
            singleton=singleton,
            idempotency_key=idempotency_key,
            on_failure=on_failure,
            rate_limit=rate_limit,
            cancel_on=cancel_on,
            throttle=throttle,
            debounce=debounce,
        )

    return wrap(fn) if fn is not None else wrap


def _check_validators(name: str, validators: Mapping[str, Callable[[Any], Any]]) -> dict[str, Callable[[Any], Any]]:
    for update, fn in validators.items():
        if not isinstance(update, str) or not update:
            raise TypeError(f"workflow {name!r}: validators are keyed by update name (a string), got {update!r}")
        if not callable(fn) or inspect.iscoroutinefunction(fn):
            raise TypeError(
                f"workflow {name!r}: the validator of update {update!r} must be a plain (not async) function "
                f"of the payload that raises to refuse it, got {fn!r}"
            )
    return dict(validators)


def as_activity(fn: Any) -> ActivityDef[..., Any]:
    """Accept a decorated activity or a plain function, async or not (named by its qualname)."""
    if isinstance(fn, ActivityDef):
        return fn
    if callable(fn) and not inspect.isclass(fn):
        return ActivityDef(fn, name=_default_name(fn), retry=NO_RETRY, timeout=None)
    raise TypeError(f"ctx.run needs an @activity or a function, got {fn!r}")
