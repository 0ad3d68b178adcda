"""Callback waits of a run actor: ``ctx.wait_for_callback`` and ASL ``.waitForTaskToken``.

A callback wait is a `Wait` of kind ``"callback"`` in the run's snapshot, keyed by the digest
of its token, with its deadline and heartbeat interval. Completions, failures and heartbeats
are inbox messages: committed by the runtime before delivery, handed to the actor with
`callback_arrived` (synchronously, so a heartbeat counts the moment it is accepted), and
deleted from the inbox by the checkpoint that applies them. Until then a crash loses
nothing: the restarted run reads them from its inbox again.

Code workflows open the wait (entry #index of the journal), run the sender step, then await
it; the outcome is journaled (CallbackCompleted / CallbackFailed) like a step's. ASL runs
(their actor awaits the interpreter, so its mailbox is not read meanwhile) resolve a future
directly; the interpreter's own snapshot says which task waits on which token digest.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._errors import CallbackError, NonDeterminismError
from ..actors import ActorRef, ActorStoppedError, TimerHandle
from ..persistence import (
    AnyEvent,
    CallbackCompleted,
    CallbackFailed,
    CallbackHeartbeat,
    CallbackWaiting,
    RunRecord,
    Wait,
)
from ._commands import AwaitCallback, CloseCallback, OpenCallback
from ._run_state import CallbackReady, RunCancelledError, _Group, _Journaled, _journaled_outcome
from ._tokens import new_token
from .asl import StatesError

if TYPE_CHECKING:
    from ._runtime import Runtime

TIMEOUT = "States.Timeout"
HEARTBEAT_TIMEOUT = "States.HeartbeatTimeout"


@dataclass(slots=True, eq=False)
class _Callback:
    index: int
    step: str
    hashes: list[str]  # every token digest that completes it; the newest last
    deadline: float | None = None
    heartbeat: float | None = None
    beat_deadline: float | None = None
    # An outcome that arrived, and how to record it: (value, error, event, inbox seq).
    outcome: tuple[Any, BaseException | None, AnyEvent, int | None] | None = None
    awaiting: bool = False  # the body is blocked on it (code) / a task waits on it (ASL)
    future: asyncio.Future[Any] | None = None  # ASL: what the waiting task awaits
    timer: TimerHandle | None = None

    def wait(self) -> Wait:
        return Wait(
            kind="callback",
            key=self.hashes[-1],
            step=self.index,
            due=self.due(),
            keys=tuple(self.hashes[:-1]),
            deadline=self.deadline,
            heartbeat=self.heartbeat,
            label=self.step,
        )

    def due(self) -> float | None:
        dues = [d for d in (self.deadline, self.beat_deadline) if d is not None]
        return min(dues) if dues else None


class CallbackWaits:
    """The run actor's callback waits (a mixin of `RunActor`; see the module docstring)."""

    if TYPE_CHECKING:  # provided by RunActor
        rt: Runtime
        run_id: str
        record: RunRecord
        _journal: dict[int, _Journaled]
        _restored_waits: dict[int, Wait]
        _waits: dict[int, Wait]
        _events: list[AnyEvent]
        _consumed: list[int]
        _seen: set[int]
        _waits_dirty: bool
        _direct: bool
        _finished: bool
        _cancel: tuple[str | None, int] | None
        _group: _Group | None

        ref: ActorRef[Any]

        def _allocate(self, name: str) -> tuple[int, _Journaled | None]: ...
        def _checkpoint(self, events: list[AnyEvent], *args: Any, **kwargs: Any) -> Any: ...
        async def _flush_if_events(self) -> None: ...

    def _init_callbacks(self) -> None:
        self._callbacks: dict[int, _Callback] = {}
        self._callback_hashes: dict[str, int] = {}
        self._callback_early: dict[str, list[tuple[int, dict[str, Any], float]]] = {}
        self._callback_journal: dict[int, _Journaled] = {}
        self._next_direct = -2  # ASL callbacks take negative indices (-1 means "no step")

    # --- asked by the runtime ----------------------------------------------------------------

    def callback_state(self, digest: str) -> str | None:
        """None if this run accepts a message for token ``digest``, else why it does not."""
        index = self._callback_hashes.get(digest)
        if index is not None:
            cb = self._callbacks[index]
            return None if cb.outcome is None else "this token's callback has already been completed or timed out"
        early = self._callback_early.get(digest)
        if early and any(msg.get("op") != "heartbeat" for _, msg, _ in early):
            return "this token's callback has already been completed (the run has not applied it yet)"
        if early or any(
            w.kind == "callback" and (w.key == digest or digest in w.keys) for w in self._restored_waits.values()
        ):
            return None
        return f"run {self.run_id!r} is not waiting on this token (it was never issued, or it was already used)"

    def callback_arrived(self, seq: int, digest: str, payload: Any, ts: float) -> None:
        """Apply inbox message ``seq`` for token ``digest`` (synchronously: a heartbeat counts
        from now, even if the actor is busy)."""
        if seq in self._seen or self._finished:
            return
        self._seen.add(seq)
        msg = payload if isinstance(payload, dict) else {}
        index = self._callback_hashes.get(digest)
        if index is None:
            self._callback_early.setdefault(digest, []).append((seq, msg, ts))  # for a wait not reopened yet
            return
        self._apply(self._callbacks[index], digest, seq, msg, ts)

    # --- applying messages and timeouts --------------------------------------------------------

    def _apply(self, cb: _Callback, digest: str, seq: int, msg: dict[str, Any], ts: float) -> None:
        """Apply message ``seq`` that came with token ``digest`` (one of ``cb``'s)."""
        if cb.outcome is not None:
            self._consumed.append(seq)  # too late: the wait already has its outcome
            return
        op = msg.get("op")
        if op == "heartbeat":
            self._consumed.append(seq)
            if cb.heartbeat is not None:
                cb.beat_deadline = max(cb.beat_deadline or 0.0, ts + cb.heartbeat)
                self._rearm(cb)
            if not self._direct:  # an ASL run's history has Step Functions' events only
                self._events.append(CallbackHeartbeat(ts=ts, index=cb.index, token_hash=digest))
            self._waits_dirty = True
            self._poke(cb)
            return
        event: AnyEvent
        if op == "complete":
            output = msg.get("output")
            event = CallbackCompleted(ts=ts, index=cb.index, step=cb.step, token_hash=digest, result=output)
            self._resolve(cb, output, None, event, seq)
        else:
            error, cause = str(msg.get("error") or "Error"), msg.get("cause")
            event = CallbackFailed(ts=ts, index=cb.index, step=cb.step, token_hash=digest, error=error, cause=cause)
            self._resolve(cb, None, self._error(cb, error, cause), event, seq)

    def _error(self, cb: _Callback, error: str, cause: str | None) -> BaseException:
        return StatesError(error, cause) if self._direct else CallbackError(cb.step, error, cause)

    def _resolve(
        self, cb: _Callback, value: Any, error: BaseException | None, event: AnyEvent, seq: int | None
    ) -> None:
        if cb.timer is not None:
            cb.timer.cancel()
            cb.timer = None
        cb.outcome = (value, error, event, seq)
        if cb.future is not None and not cb.future.done():
            cb.future.set_result(None)
        self._poke(cb)

    def _poke(self, cb: _Callback) -> None:
        """Have the actor act on ``cb`` (code workflows: the body may be blocked on it)."""
        if self._direct or cb.future is not None:
            return
        try:
            self.ref.tell(CallbackReady(cb.index))
        except ActorStoppedError:
            pass  # stopping: the inbox and the snapshot keep everything for the next incarnation

    def _rearm(self, cb: _Callback) -> None:
        if cb.timer is not None:
            cb.timer.cancel()
            cb.timer = None
        due = cb.due()
        if due is None or cb.outcome is not None:
            return
        self._waits[cb.index] = cb.wait()
        cb.timer = self.rt.clock.call_at(due, lambda: self._timed_out(cb))

    def _timed_out(self, cb: _Callback) -> None:
        cb.timer = None
        if cb.outcome is not None or self._callbacks.get(cb.index) is not cb or self._finished:
            return
        now = self.rt.clock.time()
        due = cb.due()
        if due is not None and due > now:  # extended by a heartbeat meanwhile
            self._rearm(cb)
            return
        if cb.deadline is not None and cb.deadline <= now:
            error, cause = TIMEOUT, "the callback was not completed within its timeout"
        else:
            error, cause = HEARTBEAT_TIMEOUT, "no heartbeat arrived within the heartbeat timeout"
        event = CallbackFailed(ts=now, index=cb.index, step=cb.step, token_hash=cb.hashes[-1], error=error, cause=cause)
        self._resolve(cb, None, self._error(cb, error, cause), event, None)

    def _register(self, cb: _Callback) -> None:
        """Track ``cb``: its wait in the snapshot, its timer, messages that came early."""
        self._callbacks[cb.index] = cb
        for digest in cb.hashes:
            self._callback_hashes[digest] = cb.index
        self._waits[cb.index] = cb.wait()
        self._waits_dirty = True
        for digest in list(cb.hashes):
            for seq, msg, ts in self._callback_early.pop(digest, ()):
                self._apply(cb, digest, seq, msg, ts)
        self._rearm(cb)

    def _forget(self, cb: _Callback) -> None:
        if cb.timer is not None:
            cb.timer.cancel()
            cb.timer = None
        self._callbacks.pop(cb.index, None)
        for digest in cb.hashes:
            self._callback_hashes.pop(digest, None)
        if self._waits.pop(cb.index, None) is not None:
            self._waits_dirty = True

    def _take(self, cb: _Callback) -> tuple[Any, BaseException | None]:
        """Record ``cb``'s outcome (with the run's next checkpoint) and hand it over."""
        assert cb.outcome is not None
        value, error, event, seq = cb.outcome
        self._forget(cb)
        self._events.append(event)
        if seq is not None:
            self._consumed.append(seq)
        return value, error

    def _drop_callbacks(self) -> None:
        for cb in list(self._callbacks.values()):
            if cb.timer is not None:
                cb.timer.cancel()
                cb.timer = None
            if cb.future is not None and not cb.future.done():
                cb.future.cancel()

    # --- code workflows ------------------------------------------------------------------------

    async def _callback_command(self, cmd: Any) -> tuple[Any, BaseException | None] | None:
        """Perform one of ``ctx.wait_for_callback``'s commands: the outcome for the body, or
        None if the body is now blocked."""
        if type(cmd) is OpenCallback:
            return await self._open_callback(cmd)
        if type(cmd) is CloseCallback:
            cb = self._callbacks.get(cmd.index)
            if cb is not None:
                self._forget(cb)
            return None, None
        assert type(cmd) is AwaitCallback
        index = cmd.index
        entry = self._callback_journal.pop(index, None)
        if entry is not None:
            return _journaled_outcome(entry, self.run_id)
        if self._cancel is not None and index == self._cancel[1]:
            return None, RunCancelledError(self._cancel[0])
        cb = self._callbacks.get(index)
        if cb is None:
            return None, RuntimeError(f"run {self.run_id!r}: callback #{index} is not open")
        if cb.outcome is not None:
            return self._take(cb)
        cb.awaiting = True
        self._group = _Group([index], single=True, results=[None], remaining=1)
        await self._flush_if_events()
        return None

    async def _open_callback(self, cmd: OpenCallback) -> tuple[Any, BaseException | None]:
        try:
            index, entry = self._allocate(f"callback:{cmd.step}")
        except NonDeterminismError as exc:
            return None, exc
        if entry is not None:  # resolved in an earlier life: the await returns it again
            self._callback_journal[index] = entry
            return (index, None), None
        sent = index + 1 in self._journal  # the sender step ran to its end before a restart
        restored = self._restored_waits.pop(index, None)
        now = self.rt.clock.time()
        if restored is not None and restored.kind == "callback":
            hashes = [*restored.keys, restored.key]
            cb = _Callback(index, cmd.step, hashes, restored.deadline, restored.heartbeat)
            if cb.heartbeat is not None:  # the stored due is the earlier of the two deadlines
                cb.beat_deadline = restored.due if restored.due is not None else now + cb.heartbeat
        else:
            cb = _Callback(index, cmd.step, [])
            cb.deadline = None if cmd.timeout is None else now + cmd.timeout
            cb.heartbeat = cmd.heartbeat
            cb.beat_deadline = None if cmd.heartbeat is None else now + cmd.heartbeat
        token: str | None = None
        if not sent:
            # The sender runs (again): give it a fresh token. Tokens handed out before a
            # restart stay valid, since the sender may have delivered them already.
            token, digest = new_token(self.run_id)
            cb.hashes.append(digest)
            self._events.append(
                CallbackWaiting(
                    ts=now, index=index, step=cmd.step, token_hash=digest, timeout=cmd.timeout, heartbeat=cmd.heartbeat
                )
            )
        if not cb.hashes:
            return None, RuntimeError(f"run {self.run_id!r}: callback #{index} has no token to wait on")
        self._register(cb)
        if token is not None:
            # Durable before the sender runs: whoever gets the token may complete it at once,
            # from another process, which checks the token against the stored wait.
            await self._flush_if_events()
        return (index, token), None

    async def _on_callback_ready(self, msg: CallbackReady) -> tuple[Any, BaseException | None] | None:
        """The outcome for the body if it is blocked on callback ``msg.index`` and that has one."""
        cb = self._callbacks.get(msg.index)
        if cb is None or self._finished:
            return None
        if cb.outcome is None:
            # A heartbeat: make it durable now, so a run that only waits can passivate.
            if cb.awaiting and (self._waits_dirty or self._events or self._consumed):
                self._waits_dirty = False
                await self._checkpoint([])
            return None
        if not cb.awaiting:
            return None  # the body takes the outcome when it reaches the await
        self._group = None
        return self._take(cb)

    def _abandon_callback(self, index: int) -> None:
        cb = self._callbacks.get(index)
        if cb is not None:
            self._forget(cb)

    # --- ASL runs ------------------------------------------------------------------------------

    async def new_direct_token(self, step: str) -> str:
        """A token for an ASL task; its wait is durable before this returns."""
        index = self._next_direct
        self._next_direct -= 1
        token, digest = new_token(self.run_id)
        cb = _Callback(index, step, [digest])
        for key, wait in list(self._restored_waits.items()):
            if wait.kind == "callback" and wait.label == step:
                # The task is invoked again after a restart: tokens it handed out before stay valid.
                del self._restored_waits[key]
                cb.hashes[:0] = [*wait.keys, wait.key]
                cb.deadline, cb.heartbeat, cb.beat_deadline = wait.deadline, wait.heartbeat, wait.due
        self._register(cb)
        await self._flush_if_events()  # _register left the new wait to record
        return token

    async def wait_direct(self, digest: str, timeout_s: float | None, heartbeat: float | None) -> Any:
        """Wait for the ASL task whose token digest is ``digest``; raise `StatesError` on failure."""
        index = self._callback_hashes.get(digest)
        if index is None:
            # Resumed after a restart: the snapshot's wait has the deadlines.
            restored = next(
                (w for w in self._restored_waits.values() if w.kind == "callback" and w.key == digest), None
            )
            index = self._next_direct
            self._next_direct -= 1
            cb = _Callback(index, "", [digest])
            if restored is not None:
                cb.step, cb.hashes = restored.label, [*restored.keys, restored.key]
                self._restored_waits.pop(restored.step, None)
                cb.deadline, cb.heartbeat, cb.beat_deadline = restored.deadline, restored.heartbeat, restored.due
            self._register(cb)
        cb = self._callbacks[index]
        now = self.rt.clock.time()
        if cb.deadline is None and timeout_s is not None:
            cb.deadline = now + timeout_s
        if cb.heartbeat is None and heartbeat is not None:
            cb.heartbeat = heartbeat
            cb.beat_deadline = now + heartbeat
        if cb.outcome is None:
            self._rearm(cb)
            self._waits[index] = cb.wait()
            loop = asyncio.get_running_loop()
            cb.future = fut = loop.create_future()
            cb.awaiting = True
            await self._checkpoint([])  # the deadlines are durable before the task sleeps
            try:
                await fut
            finally:
                cb.future = None
        value, error, _event, seq = cb.outcome  # type: ignore[misc]
        self._forget(cb)
        if seq is not None:
            self._consumed.append(seq)
        if error is not None:
            raise error
        return value
