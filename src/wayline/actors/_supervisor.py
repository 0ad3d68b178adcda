"""Supervision in the style of Erlang/OTP: restart a crashed actor, but not forever.

The policy is data (`SupervisorSpec`). A crash is an exception escaping an actor (a bug or a
broken dependency, not a business failure). The supervisor restarts the actor with the same
ref and mailbox after a backoff; if it crashes more than ``intensity`` times within
``period`` seconds it stays down and ``on_give_up`` is told why, so the owner can record the
failure instead of losing the actor silently.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Self, TypeVar

import anyio
import anyio.abc

from ._actor import Actor, ActorRef, run_actor
from ._clock import Clock

M = TypeVar("M")


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


class Supervisor:
    """Owns the tasks of its actors; use as ``async with Supervisor(spec, clock) as sup``."""

    def __init__(self, spec: SupervisorSpec, clock: Clock) -> None:
        self.spec = spec
        self.clock = clock
        self.children: dict[str, ActorRef[Any]] = {}
        self._tg: anyio.abc.TaskGroup | None = None

    async def __aenter__(self) -> Self:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        assert self._tg is not None
        try:
            return await self._tg.__aexit__(*exc_info)
        finally:
            self._tg = None

    def cancel_all(self) -> None:
        """Stop every child now (their durable state is untouched)."""
        if self._tg is not None:
            self._tg.cancel_scope.cancel()

    def spawn(
        self,
        name: str,
        factory: Callable[[], Actor[M]],
        *,
        on_crash: CrashHook | None = None,
        on_give_up: CrashHook | None = None,
    ) -> ActorRef[M]:
        """Start a supervised actor built by ``factory`` (called again for each restart).

        ``on_crash(exc, restarts)`` runs before each restart and ``on_give_up(exc, restarts)``
        when the restart intensity is exceeded.
        """
        if self._tg is None:
            raise RuntimeError("the supervisor is not running; use it as an async context manager")
        ref: ActorRef[M] = ActorRef(name)
        self.children[name] = ref
        self._tg.start_soon(self._supervise, ref, factory, on_crash, on_give_up, name=f"actor:{name}")
        return ref

    async def _supervise(
        self,
        ref: ActorRef[M],
        factory: Callable[[], Actor[M]],
        on_crash: CrashHook | None,
        on_give_up: CrashHook | None,
    ) -> None:
        spec = self.spec
        crashes: deque[float] = deque()
        delay = spec.backoff_initial
        restarts = 0
        error: BaseException | None = None
        try:
            while True:
                actor = factory()
                actor.ref = ref
                ref._stopping = False
                try:
                    await run_actor(actor)
                    return
                except Exception as exc:
                    error = exc
                now = self.clock.time()
                crashes.append(now)
                while crashes and crashes[0] < now - spec.period:
                    crashes.popleft()
                if len(crashes) > spec.intensity:
                    if on_give_up is not None:
                        await on_give_up(error, restarts)
                    return
                restarts += 1
                if on_crash is not None:
                    await on_crash(error, restarts)
                await self.clock.sleep(delay)
                delay = min(delay * spec.backoff_factor, spec.backoff_max)
        finally:
            ref._close(error)
            if self.children.get(ref.name) is ref:
                del self.children[ref.name]
