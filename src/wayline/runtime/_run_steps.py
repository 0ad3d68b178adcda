"""Step attempts of a run actor beyond the inline fast path (a mixin of `RunActor`).

The steps of a ``ctx.gather``/``ctx.map`` run as tasks (at most ``max_concurrency`` at once)
and report through the mailbox; a durable sleep and retry backoff are timers; a failed attempt
is retried or fails its step for good. Each outcome is checkpointed before the body sees it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from .._errors import ActivityError, ActivityTimeoutError, PayloadError, SignalTimeoutError
from ..actors import ActorRef, ActorStoppedError
from ..persistence import (
    AnyEvent,
    ErrorInfo,
    RunRecord,
    SignalTimedOut,
    StepFailed,
    StepRetrying,
    StepStarted,
    StepSucceeded,
    Wait,
)
from ._commands import Sleep, Step
from ._context import RunContext
from ._run_state import (
    SLEEP_STEP,
    Outcome,
    StepDone,
    TimerFired,
    _as_replayed,
    _Group,
    _Journaled,
    _Pending,
    _shaped,
    _storable,
)
from ._stepinfo import StepInfo, _current as _current_step
from ._telemetry import Segment

if TYPE_CHECKING:
    from ._runtime import Runtime


class StepAttempts:
    """Gathered steps, sleeps, timers, retries and final failures (see the module docstring)."""

    if TYPE_CHECKING:  # provided by RunActor
        rt: Runtime
        run_id: str
        ref: ActorRef[Any]
        record: RunRecord
        ctx: RunContext
        _tel: Segment | None
        _active: dict[int, _Pending]
        _waits: dict[int, Wait]
        _waits_dirty: bool
        _restored_waits: dict[int, Wait]
        _failed_attempts: dict[int, int]
        _signal_waiters: dict[str, int]
        _group: _Group | None
        _steps: int

        def _allocate(self, name: str) -> tuple[int, _Journaled | None]: ...
        def _checkpoint(self, events: list[AnyEvent], *args: Any, **kwargs: Any) -> Awaitable[None]: ...
        def _record_success(
            self, index: int, name: str, attempt: int, started_at: float, result: Any
        ) -> Awaitable[None]: ...
        def _abandon_callback(self, index: int) -> None: ...
        async def _attempt_inline(
            self, index: int, step: Step[Any], attempt: int
        ) -> tuple[Outcome | None, Awaitable[None] | None]: ...

    def _open_group(self, group: _Group, steps: tuple[Step[Any], ...]) -> None:
        group.results = [None] * len(steps)
        for slot, step in enumerate(steps):
            index, entry = self._allocate(step.activity.name)
            group.indices.append(index)
            if entry is not None:
                result = _shaped(entry.result, step.activity.result_type)
                self._settle(group, slot, result, entry.error, step.activity.name, entry.attempts)
                continue
            group.remaining += 1
            self._active[index] = _Pending(step, group, slot, attempt=self._failed_attempts.get(index, 0) + 1)
            group.queued.append(index)
        self._pump(group)

    def _open_sleep(self, group: _Group, cmd: Sleep) -> None:
        group.results = [None]
        index, entry = self._allocate(SLEEP_STEP)
        group.indices.append(index)
        if entry is not None:
            return
        restored = self._restored_waits.get(index)
        due = restored.due if restored is not None and restored.due is not None else cmd.until
        pending = _Pending(None, group, 0)
        self._active[index] = pending
        group.remaining = 1
        self._waits[index] = Wait(kind="timer", key=f"sleep:{index}", step=index, due=due)
        self._waits_dirty = True
        self._schedule(index, pending, due)

    def _pump(self, group: _Group) -> None:
        limit = group.max_concurrency
        while group.queued and (limit is None or group.running < limit):
            index = group.queued.popleft()
            pending = self._active[index]
            group.running += 1
            restored = self._restored_waits.pop(index, None)
            if restored is not None and restored.kind == "retry" and restored.due is not None:
                # Crashed during a retry backoff: wait out the rest of it, then retry.
                self._waits[index] = restored
                self._schedule(index, pending, restored.due)
            else:
                self._start_attempt(index, pending)

    def _schedule(self, index: int, pending: _Pending, due: float) -> None:
        ref = self.ref
        attempt = pending.attempt

        def fire() -> None:
            try:
                ref.tell(TimerFired(index, attempt))
            except ActorStoppedError:
                pass

        pending.timer = self.rt.clock.call_at(due, fire)

    def _start_attempt(self, index: int, pending: _Pending) -> None:
        step = pending.step
        assert step is not None
        pending.started_at = self.rt.clock.time()
        # The new task copies the current context, so set the step info just around creation.
        info = StepInfo(self.run_id, step.activity.name, index, pending.attempt, self.record.workflow)
        token = _current_step.set(info)
        otel = self._tel.attempt_started(index, step.activity.name, pending.attempt) if self._tel is not None else None
        try:
            task = asyncio.get_running_loop().create_task(
                self._run_attempt(index, pending.attempt, step), name=f"{self.run_id}:{step.activity.name}#{index}"
            )
        finally:
            _current_step.reset(token)
            if otel is not None:
                Segment.detach(otel)
        pending.task = task

    async def _run_attempt(self, index: int, attempt: int, step: Step[Any]) -> None:
        limiter = self.rt._limiter
        try:
            if limiter is not None:
                await limiter.acquire()  # time queued here does not count against the timeout
            try:
                timeout = step.activity.timeout
                pending = self._active.get(index)
                if timeout is not None and pending is not None and pending.attempt == attempt:
                    self._schedule(index, pending, self.rt.clock.time() + timeout)
                result = await step.activity.fn(*step.args, **step.kwargs)
            finally:
                if limiter is not None:
                    limiter.release()
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is None or task.cancelling():
                return  # the actor cancelled this attempt (timeout, cancel, shutdown) and knows it
            msg = StepDone(index, attempt, error=exc)  # raised by the activity itself: a failure
        except Exception as exc:
            msg = StepDone(index, attempt, error=exc)
        else:
            msg = StepDone(index, attempt, result=result)
        try:
            self.ref.tell(msg)
        except ActorStoppedError:
            pass

    def _pending(self, index: int, step: Step[Any], attempt: int, started: float) -> _Pending:
        """The bookkeeping of an inline step, made once it needs any (its attempt failed): a
        step that simply succeeds never allocates one."""
        pending = self._active.get(index)
        if pending is None:
            pending = self._active[index] = _Pending(step, None, 0, attempt=attempt)
        pending.started_at = started
        return pending

    async def _on_step_done(self, msg: StepDone) -> Outcome | None:
        pending = self._active.get(msg.index)
        if pending is None or pending.attempt != msg.attempt or pending.step is None:
            return None  # a late result of an attempt already timed out or cancelled
        if pending.timer is not None:
            pending.timer.cancel()
            pending.timer = None
        outcome: Outcome | None
        if msg.error is None:
            outcome = await self._succeeded(msg.index, pending, msg.result)
        else:
            outcome = await self._attempt_failed(msg.index, pending, msg.error)
        return None if outcome is None else self._deliver(pending, outcome)

    async def _on_timer(self, msg: TimerFired) -> Outcome | None:
        pending = self._active.get(msg.index)
        if pending is None or pending.attempt != msg.attempt:
            return None
        pending.timer = None
        wait = self._waits.pop(msg.index, None)
        outcome: Outcome | None
        if pending.signal is not None:  # a wait_signal timed out
            del self._active[msg.index]
            self._signal_waiters.pop(pending.signal, None)
            self._steps += 1
            await self._checkpoint([SignalTimedOut(ts=self.rt.clock.time(), index=msg.index, name=pending.signal)])
            self._group = None
            return None, SignalTimeoutError(self.run_id, pending.signal, None)
        if pending.step is None:  # a durable sleep is over
            del self._active[msg.index]
            self._steps += 1
            await self._checkpoint(
                [StepSucceeded(ts=self.rt.clock.time(), step=SLEEP_STEP, index=msg.index, attempt=1)]
            )
            outcome = (None, None)
        elif wait is not None and wait.kind == "retry":  # backoff over: next attempt
            if pending.group is not None:
                self._start_attempt(msg.index, pending)
                return None
            outcome, commit = await self._attempt_inline(msg.index, pending.step, pending.attempt)
            if commit is not None:
                await commit
        else:  # the timeout of an attempt running as a task
            if pending.task is not None:
                pending.task.cancel()
            timeout = pending.step.activity.timeout or 0.0
            outcome = await self._attempt_failed(
                msg.index, pending, ActivityTimeoutError(pending.step.activity.name, timeout)
            )
        return None if outcome is None else self._deliver(pending, outcome)

    def _deliver(self, pending: _Pending, outcome: Outcome) -> Outcome | None:
        """A finished step's outcome for the body: directly, or once its whole group is done."""
        group = pending.group
        if group is None:
            return outcome
        value, error = outcome
        if error is None:
            group.results[pending.slot] = value
        else:
            assert isinstance(error, ActivityError)
            group.failures.append(error)
            group.results[pending.slot] = {"error": error.error, "cause": error.cause}
        group.remaining -= 1
        group.running -= 1
        if group.remaining:
            self._pump(group)
            return None
        self._group = None
        return self._group_outcome(group)

    async def _succeeded(self, index: int, pending: _Pending, result: Any) -> Outcome:
        step = pending.step
        assert step is not None
        try:
            await self._record_success(index, step.activity.name, pending.attempt, pending.started_at, result)
        except PayloadError as exc:
            return await self._unstorable(index, pending, exc)
        return (_as_replayed(result) if step.activity.result_type is Any else result), None

    async def _unstorable(self, index: int, pending: _Pending, exc: PayloadError) -> Outcome:
        if not _storable(self.ctx.vars):
            raise exc  # the vars, not the result: handled in _main()
        # The result cannot be stored: the step fails for good (retrying would not help).
        return await self._failed_final(index, pending, "PayloadError", str(exc))

    async def _attempt_failed(
        self, index: int, pending: _Pending, exc: BaseException
    ) -> Outcome | None:
        """Record a failed attempt: schedule a retry (None: blocked) or fail the step for good."""
        step = pending.step
        assert step is not None
        policy = step.activity.retry
        name = step.activity.name
        error: str = type(exc).__name__
        cause: str | None = str(exc)
        if isinstance(exc, ActivityError):
            error, cause = exc.error, exc.cause
        if pending.attempt >= policy.max_attempts or not policy.retryable(exc):
            return await self._failed_final(index, pending, error, cause)
        now = self.rt.clock.time()
        delay = policy.delay(pending.attempt)
        events: list[AnyEvent] = [
            StepStarted(ts=pending.started_at, step=name, index=index, attempt=pending.attempt),
            StepFailed(ts=now, step=name, index=index, attempt=pending.attempt, error=error, cause=cause),
            StepRetrying(ts=now, step=name, index=index, attempt=pending.attempt + 1, delay=delay),
        ]
        if self._tel is not None:
            self._tel.attempt_failed(index, name, pending.attempt, pending.started_at, (error, cause), now, delay)
        pending.attempt += 1
        pending.task = None
        due = now + delay
        self._waits[index] = Wait(kind="retry", key=f"{name}#{index}", step=index, due=due)
        await self._checkpoint(events)
        self._schedule(index, pending, due)
        return None

    async def _failed_final(
        self, index: int, pending: _Pending, error: str, cause: str | None
    ) -> Outcome:
        step = pending.step
        assert step is not None
        name = step.activity.name
        now = self.rt.clock.time()
        if self._tel is not None:
            self._tel.attempt_failed(index, name, pending.attempt, pending.started_at, (error, cause), now, None)
        del self._active[index]
        self._waits.pop(index, None)
        self._steps += 1
        await self._checkpoint(
            [
                StepStarted(ts=pending.started_at, step=name, index=index, attempt=pending.attempt),
                StepFailed(
                    ts=now, step=name, index=index, attempt=pending.attempt, error=error, cause=cause, final=True
                ),
            ]
        )
        return None, ActivityError(name, error, cause, pending.attempt)

    def _settle(self, group: _Group, slot: int, result: Any, error: ErrorInfo | None, name: str, attempts: int) -> None:
        if error is None:
            group.results[slot] = result
        else:
            group.failures.append(ActivityError(name, error.error, error.cause, attempts))
            group.results[slot] = {"error": error.error, "cause": error.cause}

    def _group_outcome(self, group: _Group) -> Outcome:
        if group.single:
            return (None, group.failures[0]) if group.failures else (group.results[0], None)
        if len(group.failures) > group.tolerated:
            return None, group.failures[0]
        return group.results, None

    def _abandon(self, group: _Group) -> None:
        for index in group.indices:
            self._abandon_callback(index)
            pending = self._active.pop(index, None)
            self._waits.pop(index, None)
            if pending is not None:
                if pending.task is not None:
                    pending.task.cancel()
                if pending.timer is not None:
                    pending.timer.cancel()
        group.remaining = 0
