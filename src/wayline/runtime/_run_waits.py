"""Signal waits and passivation of a run actor (a mixin of `RunActor`).

``ctx.wait_signal`` is journal entry #index: resolved from the journal on replay, from a
signal kept since it arrived early, or a durable wait (with an optional timeout) until one is
delivered. A run blocked only on durable waits leaves memory after ``passivate_after``.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from .._errors import NonDeterminismError
from ..actors import ActorRef, ActorStoppedError, TimerHandle
from ..persistence import AnyEvent, SignalReceived, Wait
from ._commands import WaitSignal
from ._run_state import Deliver, Outcome, Passivate, RunCancelledError, _Group, _Journaled, _journaled_outcome, _Pending

if TYPE_CHECKING:
    from ._runtime import Runtime


class SignalWaits:
    """Signals and passivation (see the module docstring)."""

    if TYPE_CHECKING:  # provided by RunActor
        rt: Runtime
        run_id: str
        ref: ActorRef[Any]
        _finished: bool
        _direct: bool
        _inline_task: Any
        _waits: dict[int, Wait]
        _signal_waiters: dict[str, int]
        _events: list[AnyEvent]
        _consumed: list[int]
        _seen: set[int]
        _signals: dict[str, deque[tuple[int, Any]]]
        _waits_dirty: bool
        _passivate_timer: TimerHandle | None
        _passivated: bool
        _active: dict[int, _Pending]
        _restored_waits: dict[int, Wait]
        _cancel: tuple[str | None, int] | None
        _group: _Group | None
        _steps: int

        def _running_steps(self) -> bool: ...
        def _allocate(self, name: str) -> tuple[int, _Journaled | None]: ...
        def _schedule(self, index: int, pending: _Pending, due: float) -> None: ...
        async def _flush_if_events(self) -> None: ...
        def stop(self) -> None: ...

    def _only_waiting(self) -> bool:
        """Blocked on durable waits alone: nothing running, nothing unrecorded."""
        return (
            not self._finished
            and not self._direct
            and self._inline_task is None
            and bool(self._waits or self._signal_waiters)
            and not self._running_steps()
            and not self._events
            and not self._consumed
            and not self._waits_dirty
            and self.ref.mailbox_depth == 0
        )

    def _arm_passivation(self) -> None:
        if self._passivate_timer is not None:
            self._passivate_timer.cancel()
            self._passivate_timer = None
        delay = self.rt._passivate_after
        if delay is None or not self._only_waiting():
            return
        ref = self.ref

        def fire() -> None:
            try:
                ref.tell(Passivate())
            except ActorStoppedError:
                pass

        self._passivate_timer = self.rt.clock.call_at(self.rt.clock.time() + delay, fire)

    async def _on_passivate(self) -> None:
        self._passivate_timer = None
        if not self._only_waiting():
            return
        # Everything it waits for is in its checkpoint (waits with due times, the inbox):
        # drop it from memory; a due timer or a message brings it back.
        self._passivated = True
        self.stop()

    def _buffer(self, seq: int, name: str, payload: Any) -> bool:
        """Keep a delivered signal until a wait_signal consumes it; False if seen before."""
        if seq in self._seen:
            return False
        self._seen.add(seq)
        self._signals.setdefault(name, deque()).append((seq, payload))
        return True

    async def _open_signal_wait(self, cmd: WaitSignal) -> Outcome | None:
        """Resolve a wait_signal from the journal or a kept signal, else block (None)."""
        try:
            index, entry = self._allocate(f"signal:{cmd.name}")
        except NonDeterminismError as exc:
            return None, exc
        if entry is not None:
            return _journaled_outcome(entry, self.run_id)
        if self._cancel is not None and index == self._cancel[1]:
            return None, RunCancelledError(self._cancel[0])
        kept = self._signals.get(cmd.name)
        if kept:
            seq, payload = kept.popleft()
            self._consume_signal(index, cmd.name, seq, payload)
            return payload, None
        restored = self._restored_waits.pop(index, None)
        if restored is not None:
            due = restored.due
        else:
            due = None if cmd.timeout is None else self.rt.clock.time() + cmd.timeout
        group = _Group([index], single=True, results=[None], remaining=1)
        pending = _Pending(None, group, 0, signal=cmd.name)
        self._active[index] = pending
        self._signal_waiters[cmd.name] = index
        self._waits[index] = Wait(kind="signal", key=cmd.name, step=index, due=due)
        self._waits_dirty = True
        if due is not None:
            self._schedule(index, pending, due)
        self._group = group
        await self._flush_if_events()
        return None

    def _consume_signal(self, index: int, name: str, seq: int, payload: Any) -> None:
        """Record that wait_signal #index took message ``seq``, in the run's next checkpoint.

        No checkpoint of its own: whatever the body does next (a step, a wait, its end)
        checkpoints before any effect leaves the process, and until then the message stays in
        the inbox, so a replay after a crash takes the same message again (it is still first in
        line). One fsync fewer per signal.
        """
        self._steps += 1
        self._events.append(SignalReceived(ts=self.rt.clock.time(), index=index, name=name, payload=payload))
        self._consumed.append(seq)

    def _on_deliver(self, msg: Deliver) -> Outcome | None:
        if not self._buffer(msg.seq, msg.name, msg.payload):
            return None
        index = self._signal_waiters.get(msg.name)
        if index is None or self._direct:
            return None  # kept for a later wait_signal
        pending = self._active.pop(index)
        del self._signal_waiters[msg.name]
        self._waits.pop(index, None)
        if pending.timer is not None:
            pending.timer.cancel()
        seq, payload = self._signals[msg.name].popleft()
        self._consume_signal(index, msg.name, seq, payload)
        self._group = None
        return payload, None
