"""Supervision in the style of Erlang/OTP: restart a crashed actor, but not forever.

The policy is data (`SupervisorSpec`). A crash is an exception escaping an actor (a bug or a
broken dependency, not a business failure). The supervisor restarts the actor with the same
ref and mailbox after a backoff; if it crashes more than ``intensity`` times within
``period`` seconds it stays down and ``on_give_up`` is told why, so the owner can record the
failure instead of losing the actor silently.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal, Protocol, Self, TypeVar

from ._actor import Actor, ActorRef, run_actor
from ._clock import Clock

M = TypeVar("M")

log = logging.getLogger("wayline.actors")


@dataclass(frozen=True, slots=True)
class SupervisorSpec:
    """Restart policy for supervised actors.

    Attributes:
        strategy: only ``"one_for_one"``: each actor is restarted alone. Runs are independent,
            so a crash in one must never restart another.
        intensity: restarts allowed within ``period``. 3 lets a transient failure (a locked
            database, a flaky dependency) heal, while a deterministic bug gives up quickly.
        period: the sliding window, in seconds, for counting restarts. 10 s spans the whole
            default backoff sequence below, so a crash loop is always detected.
        backoff_initial: delay before the first restart; doubles each time (``backoff_factor``)
            up to ``backoff_max``. Small, because a restart is cheap (reload one snapshot).
    """

    strategy: Literal["one_for_one"] = "one_for_one"
    intensity: int = 3
    period: float = 10.0
    backoff_initial: float = 0.05
    backoff_factor: float = 2.0
    backoff_max: float = 2.0

    def __post_init__(self) -> None:
        if self.strategy != "one_for_one":
            raise ValueError(f"unsupported supervision strategy {self.strategy!r}; use 'one_for_one'")
        if self.intensity < 0 or self.period <= 0:
            raise ValueError("SupervisorSpec needs intensity >= 0 and period > 0")


CrashHook = Callable[[BaseException, int], Awaitable[None]]


class ChildSpec(Protocol):
    """One supervised actor as an object: how to build it (again after each crash) and what to
    do on a crash and on giving up. `Supervisor.spawn_child` takes one of these where
    `Supervisor.spawn` takes three callables: with 100,000 actors, three bound methods each
    are objects the garbage collector walks for nothing."""

    def build(self) -> Actor[Any]:
        """A new incarnation of the actor."""
        ...

    async def on_crash(self, exc: BaseException, restarts: int) -> None:
        """Runs before each restart."""
        ...

    async def on_give_up(self, exc: BaseException, restarts: int) -> None:
        """Runs when the restart intensity is exceeded (the actor stays down)."""
        ...


class _Callables:
    """A `ChildSpec` made of the callables given to `Supervisor.spawn`."""

    __slots__ = ("crash_hook", "factory", "give_up_hook")

    def __init__(self, factory: Callable[[], Actor[Any]], on_crash: CrashHook | None, on_give_up: CrashHook | None):
        self.factory = factory
        self.crash_hook = on_crash
        self.give_up_hook = on_give_up

    def build(self) -> Actor[Any]:
        return self.factory()

    async def on_crash(self, exc: BaseException, restarts: int) -> None:
        if self.crash_hook is not None:
            await self.crash_hook(exc, restarts)

    async def on_give_up(self, exc: BaseException, restarts: int) -> None:
        if self.give_up_hook is not None:
            await self.give_up_hook(exc, restarts)


class Supervisor:
    """Owns the tasks of its actors; use as ``async with Supervisor(spec, clock) as sup``.

    It is a small nursery of plain asyncio tasks (one per actor, 100,000 of them is normal)
    rather than an anyio task group, which keeps several extra objects per task alive; the
    structured-concurrency contract is the same: leaving the block waits for every child,
    and a child dying of a non-`Exception` error (a crash no restart can fix) cancels the
    block and is re-raised from it.
    """

    def __init__(self, spec: SupervisorSpec, clock: Clock) -> None:
        self.spec = spec
        self.clock = clock
        self.children: dict[str, ActorRef[Any]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._owners: dict[asyncio.Task[None], _Child] = {}
        self._host: asyncio.Task[Any] | None = None
        self._fatal: BaseException | None = None
        self._running = False
        self._cancelling = False  # cancel_all was called: cancelled children are expected
        # One bound method and one (empty) context for every child task's done-callback,
        # instead of a new pair per task: there can be 100,000 children.
        self._on_done = self._incarnation_done
        self._callback_context = contextvars.Context()

    async def __aenter__(self) -> Self:
        self._host = asyncio.current_task()
        self._running = True
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> bool | None:
        if exc is not None and self._fatal is None:
            self.cancel_all()
        while self._tasks:
            await asyncio.wait(set(self._tasks))
        self._running = False
        if self._fatal is not None:
            host = self._host
            if host is not None and isinstance(exc, asyncio.CancelledError):
                host.uncancel()
            raise self._fatal
        return None

    def cancel_all(self) -> None:
        """Stop every child now (their durable state is untouched)."""
        self._cancelling = True
        for task in self._tasks:
            task.cancel()
        # A parked child has no task to cancel: it gets one that ends it the same way.
        for ref in list(self.children.values()):
            parked = ref._parked
            if isinstance(parked, _Child):
                ref._parked = None
                self._run(parked, parked.rested()._stop_parked())

    def spawn(
        self,
        name: str,
        factory: Callable[[], Actor[M]],
        *,
        on_crash: CrashHook | None = None,
        on_give_up: CrashHook | None = None,
        context: contextvars.Context | None = None,
    ) -> ActorRef[M]:
        """Start a supervised actor built by ``factory`` (called again for each restart).

        ``on_crash(exc, restarts)`` runs before each restart and ``on_give_up(exc, restarts)``
        when the restart intensity is exceeded. ``context``: the context variables every task
        of the actor starts with (a copy of it each time); by default the first task copies
        the caller's. An actor that parks (`Actor.parks`) gets new tasks from whoever sends
        it a message, so it should be given one: a sender's variables must not leak in.
        """
        return self.spawn_child(name, _Callables(factory, on_crash, on_give_up), context=context)

    def spawn_child(self, name: str, spec: ChildSpec, *, context: contextvars.Context | None = None) -> ActorRef[Any]:
        """Start a supervised actor described by ``spec`` (see `spawn` for ``context``)."""
        if not self._running:
            raise RuntimeError("the supervisor is not running; use it as an async context manager")
        ref: ActorRef[Any] = ActorRef(name)
        self.children[name] = ref
        self._start(_Child(self, ref, spec, self.spec.backoff_initial, context))
        return ref

    def _start(self, child: _Child) -> None:
        """Run a new incarnation of ``child`` as a task that is just the actor's loop.

        Supervision happens in the task's done-callback rather than in a wrapping coroutine:
        with 100,000 live actors, one frame fewer each is real memory and GC work.
        """
        actor = child.spec.build()
        actor.ref = child.ref
        child.ref._stopping = False
        self._run(child, run_actor(actor))

    def _run(self, child: _Child, coro: Coroutine[Any, Any, None]) -> None:
        context = child.context
        task = asyncio.get_running_loop().create_task(coro, context=None if context is None else context.copy())
        self._tasks.add(task)
        self._owners[task] = child
        task.add_done_callback(self._on_done, context=self._callback_context)

    def _resume(self, child: _Child) -> None:
        """A parked child got a message: run its loop again, in a task of its own."""
        actor = child.rested()
        if self._cancelling or not self._running:
            self._run(child, actor._stop_parked())
        else:
            self._run(child, run_actor(actor))

    def _incarnation_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        child = self._owners.pop(task, None)
        if task.cancelled():
            if child is None:
                return
            if self._cancelling or not self._running or self._torn_down():
                self._close(child, None)
                return
            # Nobody here cancelled it: a CancelledError escaped the actor (a library cancelled
            # a future it awaited). That is a crash like any other, not a quiet exit.
            exc: BaseException | None = asyncio.CancelledError("an actor task ended with a stray cancellation")
        else:
            exc = task.exception()
        if child is None:  # a hook task (on_crash / on_give_up / a delayed restart)
            if exc is not None:
                self._die(exc)
            return
        if exc is None:
            ref = child.ref
            if ref._stopping or ref._stopped:
                self._close(child, None)
            elif self._cancelling or not self._running:
                self._run(child, child.rested()._stop_parked())  # parked as the supervisor stops
            elif ref._mailbox:
                self._resume(child)  # a message came between its park and this callback
            else:
                ref._parked = child  # parked: its next message resumes it
            return
        if not isinstance(exc, Exception | asyncio.CancelledError):
            self._close(child, exc)
            self._die(exc)
            return
        spec = self.spec
        now = self.clock.time()
        if child.crashes is None:
            child.crashes = deque()
        child.crashes.append(now)
        while child.crashes and child.crashes[0] < now - spec.period:
            child.crashes.popleft()
        if len(child.crashes) > spec.intensity:
            self._hook(self._give_up(child, exc))
        else:
            child.restarts += 1
            self._hook(self._restart_later(child, exc))

    def _torn_down(self) -> bool:
        """Whether the task that owns this block is being cancelled or is gone: the loop is
        torn down under it (``asyncio.run`` cancels every task at once when its main task
        dies, a test runner does the same when a test times out). The children's
        cancellations then come from that teardown, before the block could cancel them
        itself: not crashes to restart."""
        host = self._host
        return host is not None and (host.done() or host.cancelling() > 0)

    def _hook(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._on_done, context=self._callback_context)

    async def _restart_later(self, child: _Child, exc: BaseException) -> None:
        try:
            try:
                await child.spec.on_crash(exc, child.restarts)
            except Exception:
                log.exception("on_crash hook of actor %r failed", child.ref.name)
            await self.clock.sleep(child.delay)
        except BaseException:
            self._close(child, exc)
            raise
        child.delay = min(child.delay * self.spec.backoff_factor, self.spec.backoff_max)
        self._start(child)

    async def _give_up(self, child: _Child, exc: BaseException) -> None:
        try:
            await child.spec.on_give_up(exc, child.restarts)
        except Exception:
            # One actor that cannot even be given up on (its store failing, say) must not take
            # every other actor down with it; its owner sees it again next time.
            log.exception("on_give_up hook of actor %r failed", child.ref.name)
        finally:
            self._close(child, exc)

    def _close(self, child: _Child, error: BaseException | None) -> None:
        ref = child.ref
        ref._close(error)
        if self.children.get(ref.name) is ref:
            del self.children[ref.name]

    def _die(self, exc: BaseException) -> None:
        """A failure no restart can fix: cancel everything and re-raise it from the block."""
        if self._fatal is None:
            self._fatal = exc
            self.cancel_all()
            if self._host is not None and self._running:
                self._host.cancel()


class _Child:
    """Supervision state of one actor across its incarnations."""

    __slots__ = (
        "context",
        "crashes",
        "delay",
        "ref",
        "restarts",
        "spec",
        "supervisor",
    )

    def __init__(
        self,
        supervisor: Supervisor,
        ref: ActorRef[Any],
        spec: ChildSpec,
        delay: float,
        context: contextvars.Context | None,
    ) -> None:
        self.supervisor = supervisor
        self.context = context
        self.ref = ref
        self.spec = spec
        self.crashes: deque[float] | None = None  # made at the first crash: most never crash
        self.delay = delay
        self.restarts = 0

    def rested(self) -> Actor[Any]:
        """The parked incarnation, taken from its ref (which held it while it had no task)."""
        ref = self.ref
        actor = ref._resting
        assert actor is not None, "only a parked actor is resumed"
        ref._resting = None
        return actor

    def resume(self) -> None:
        """The parked actor got a message (`Parked`)."""
        self.supervisor._resume(self)
