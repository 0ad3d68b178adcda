"""LocalHost: an in-memory host that runs a state machine standalone.

Resources are called directly, time is virtual (sleeping jumps the clock instantly),
callback tokens are completed with :meth:`LocalHost.complete_task`, child runs execute
in-process, and checkpoints keep the latest snapshot and the whole history in memory.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
import msgspec

from ..._tokens import digest_token
from ._errors import HEARTBEAT_TIMEOUT, TIMEOUT, StatesError
from ._execute import execute
from ._machine import StateMachine, call_resource, find_resource

__all__ = ("LocalHost",)

_encode = msgspec.json.encode
_decode = msgspec.json.decode


class _Token:
    __slots__ = ("beat_deadline", "deadline", "done", "error", "heartbeat", "output")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.output: Any = None
        self.error: StatesError | None = None
        self.deadline: float | None = None
        self.heartbeat: float | None = None
        self.beat_deadline: float | None = None


class LocalHost:
    """An in-memory :class:`AslHost` for tests, benchmarks and scripts.

    Args:
        machine: The machine whose ``resources`` are used (more can be given).
        resources: Extra resources, by ARN or short name.
        machines: Machines that ``states:startExecution.sync`` may start, by name or ARN.
        start_time: The virtual clock's start (epoch seconds); defaults to the real time.

    Attributes:
        calls: ``(resource, payload)`` for every resource call, in order.
        steps: ``(step, attempt)`` of every resource call: the idempotency key parts.
        history: Every history event checkpointed so far.
        snapshot: The latest checkpointed snapshot (a decoded copy), or None.
        checkpoints: How many checkpoints were taken.
    """

    def __init__(
        self,
        machine: StateMachine | None = None,
        *,
        resources: Mapping[str, Callable[..., Awaitable[Any]]] | None = None,
        machines: Mapping[str, StateMachine] | None = None,
        start_time: float | None = None,
    ) -> None:
        self.resources: dict[str, Callable[..., Awaitable[Any]]] = {}
        if machine is not None:
            self.resources.update(machine.resources)
        self.resources.update(resources or {})
        self.machines: dict[str, StateMachine] = dict(machines or {})
        self._now = time.time() if start_time is None else start_time
        self._tokens: dict[str, _Token] = {}  # by the token's digest, as the interpreter knows it
        self._raw: dict[str, str] = {}  # digest -> token, for pending_tokens()
        self._token_waited: anyio.Event | None = None
        self.calls: list[tuple[str, Any]] = []
        self.steps: list[tuple[str, int]] = []
        self.history: list[dict[str, Any]] = []
        self._snapshot: bytes | None = None
        self.checkpoints = 0
        self.children: list[str] = []

    # ------------------------------------------------------------------ clock

    def now(self) -> float:
        """Return the virtual time."""
        return self._now

    async def sleep_until(self, when: float) -> None:
        """Jump the virtual clock to ``when`` (never backwards) and yield once."""
        if when > self._now:
            self._now = when
        await anyio.lowlevel.checkpoint()

    def advance(self, seconds: float) -> None:
        """Move the clock forward; callback tokens past their deadline time out."""
        self._now += seconds
        for token in self._tokens.values():
            if token.done.is_set():
                continue
            if token.deadline is not None and token.deadline <= self._now:
                token.error = StatesError(TIMEOUT, "The task timed out waiting for a callback")
                token.done.set()
            elif token.beat_deadline is not None and token.beat_deadline <= self._now:
                token.error = StatesError(HEARTBEAT_TIMEOUT, "No heartbeat arrived within HeartbeatSeconds")
                token.done.set()

    # ------------------------------------------------------------------ tasks

    def _resource(self, name: str) -> Callable[..., Awaitable[Any]]:
        fn = find_resource(self.resources, name)
        if fn is None:
            raise StatesError("States.Runtime", f"No resource is registered for {name!r}")
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
        """Call the resource registered for ``resource``.

        A resource failing with :class:`StatesError` keeps its error name; any other
        exception becomes an error named after its class, as AWS Lambda reports errors.
        """
        fn = self._resource(resource)
        self.calls.append((resource, payload))
        self.steps.append((step, attempt))
        return await call_resource(fn, payload, timeout_seconds)

    async def new_task_token(self, *, state: str, step: str) -> str:
        """Create a callback token."""
        token = secrets.token_urlsafe(32)
        self._tokens[digest_token(token)] = _Token()
        self._raw[digest_token(token)] = token
        return token

    async def wait_task_token(
        self, token: str, *, timeout_seconds: float | None, heartbeat_seconds: float | None
    ) -> Any:
        """Wait until :meth:`complete_task` or :meth:`fail_task` is called for the token whose
        digest is ``token``."""
        entry = self._tokens.setdefault(token, _Token())
        if timeout_seconds is not None and entry.deadline is None:
            entry.deadline = self._now + timeout_seconds
        if heartbeat_seconds is not None and entry.heartbeat is None:
            entry.heartbeat = heartbeat_seconds
            entry.beat_deadline = self._now + heartbeat_seconds
        if self._token_waited is not None:
            self._token_waited.set()
        await entry.done.wait()
        if entry.error is not None:
            raise entry.error
        return entry.output

    def pending_tokens(self) -> list[str]:
        """Tokens issued and not yet completed, oldest first."""
        return [self._raw[d] for d, e in self._tokens.items() if not e.done.is_set() and d in self._raw]

    async def wait_for_token(self) -> str:
        """Wait until a run waits on a callback token, and return the oldest such token."""
        while True:
            pending = self.pending_tokens()
            if pending:
                return pending[0]
            self._token_waited = anyio.Event()
            await self._token_waited.wait()

    def heartbeat(self, token: str) -> None:
        """Record a heartbeat for ``token`` (AWS: SendTaskHeartbeat)."""
        entry = self._tokens.get(digest_token(token))
        if entry is not None and entry.heartbeat is not None:
            entry.beat_deadline = self._now + entry.heartbeat

    def complete_task(self, token: str, output: Any) -> None:
        """Complete a ``.waitForTaskToken`` task (AWS: SendTaskSuccess)."""
        entry = self._tokens.setdefault(digest_token(token), _Token())
        entry.output = output
        entry.done.set()

    def fail_task(self, token: str, error: str, cause: str | None = None) -> None:
        """Fail a ``.waitForTaskToken`` task (AWS: SendTaskFailure)."""
        entry = self._tokens.setdefault(digest_token(token), _Token())
        entry.error = StatesError(error, cause)
        entry.done.set()

    # ------------------------------------------------------------------ children

    async def stop_children(self, names: list[str], reason: str) -> None:
        """Children run inline here, in tasks the failed Map has cancelled already."""
        return None

    async def start_child(
        self, machine: str | StateMachine, input: Any, *, name: str, wait: bool = True, deadline: float | None = None
    ) -> Any:
        """Run a child execution in-process and return its output (None if not ``wait``:
        the parent does not see the outcome of a child it only started). The child runs
        inline on the virtual clock, so a ``deadline`` is checked when it ends."""
        if isinstance(machine, str):
            target = self.machines.get(machine) or self.machines.get(machine.rsplit(":", 1)[-1])
            if target is None:
                raise StatesError("States.Runtime", f"No state machine is registered as {machine!r}")
            machine = target
        self.children.append(name)
        child = _ChildHost(self, machine)
        try:
            output = await execute(machine, input, child, context={"Execution": {"Name": name}})
        except StatesError:
            if wait:
                raise
            return None
        if deadline is not None and self._now > deadline:
            raise StatesError(TIMEOUT, f"The child execution {name!r} did not end by its deadline")
        return output

    # ------------------------------------------------------------------ persistence

    async def checkpoint(self, snapshot: dict[str, Any], events: list[dict[str, Any]]) -> None:
        """Keep ``snapshot`` encoded (as a store would) and append ``events`` to history."""
        self._snapshot = _encode(snapshot)
        self.history.extend(events)
        self.checkpoints += 1

    @property
    def snapshot(self) -> dict[str, Any] | None:
        """The latest checkpointed snapshot, decoded afresh, or None before the first."""
        return None if self._snapshot is None else _decode(self._snapshot)

    async def execute(
        self,
        machine: StateMachine,
        input: Any,
        *,
        context: Mapping[str, Any] | None = None,
        resume: dict[str, Any] | None = None,
    ) -> Any:
        """Run ``machine`` on this host (see :func:`execute`)."""
        for key, fn in machine.resources.items():
            self.resources.setdefault(key, fn)
        return await execute(machine, input, self, context=context, resume=resume)


class _ChildHost:
    """The parent's host for a child run, except that checkpoints stay separate."""

    def __init__(self, parent: LocalHost, machine: StateMachine) -> None:
        self.parent = parent
        self.machine = machine

    def now(self) -> float:
        return self.parent.now()

    async def sleep_until(self, when: float) -> None:
        await self.parent.sleep_until(when)

    async def invoke(self, resource: str, payload: Any, **kw: Any) -> Any:
        if resource not in self.parent.resources and resource in self.machine.resources:
            self.parent.resources[resource] = self.machine.resources[resource]
        return await self.parent.invoke(resource, payload, **kw)

    async def new_task_token(self, *, state: str, step: str) -> str:
        return await self.parent.new_task_token(state=state, step=step)

    async def wait_task_token(self, token: str, **kw: Any) -> Any:
        return await self.parent.wait_task_token(token, **kw)

    async def start_child(
        self, machine: str | StateMachine, input: Any, *, name: str, wait: bool = True, deadline: float | None = None
    ) -> Any:
        return await self.parent.start_child(machine, input, name=name, wait=wait, deadline=deadline)

    async def stop_children(self, names: list[str], reason: str) -> None:
        await self.parent.stop_children(names, reason)

    async def checkpoint(self, snapshot: dict[str, Any], events: list[dict[str, Any]]) -> None:
        return None
