"""Steps, as the run's state machine runs them: single steps, gathers and maps, durable
sleeps, retries and final failures. Pure: each function changes a `RunState` and appends the
effects to perform to ``out``.

A step the body awaits alone runs inline, in the run's own task; the steps of a gather or map
run as tasks (at most ``max_concurrency`` at once) whose outcomes come back as `StepDone`
messages. Every outcome is checkpointed before the body sees it.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from ..._errors import ActivityError, ActivityTimeoutError, Cancelled, PayloadError, SignalTimeoutError
from ...persistence import (
    AnyEvent,
    ErrorInfo,
    RetryWait,
    SignalTimedOut,
    StepFailed,
    StepRetrying,
    StepStarted,
    StepSucceeded,
    TimerWait,
    encode,
)
from .._commands import SLEEP_STEP, Gather, Sleep, Step
from ._callbacks import abandon_callback
from ._effects import CancelTimer, Effect, Resume, RunAttempt, SetTimer, StopAttempt
from ._journal import SleepEntry, StepEntry, check_wait, outcome
from ._messages import StepDone, TimerFired
from ._state import Group, Outcome, Pending, RunState
from ._values import as_replayed, plain, shaped


def fresh(s: RunState, index: int) -> bool:
    """Journal position ``index`` is new work: nothing to replay, restore or cancel there."""
    return index not in s.journal and index not in s.restored_waits and s.cancel is None


def start_inline(s: RunState, out: list[Effect], index: int, step: Step[Any], attempt: int) -> None:
    """Run an attempt of the step the body awaits alone, in the run's own task; its outcome
    comes back as a `StepDone`. Nothing starts while a cancel is on its way: the body gets
    the cancellation at this await."""
    if s.cancel_requested:
        return
    s.inline_index, s.inline_step, s.inline_attempt, s.inline_started = index, step, attempt, s.now
    out.append(RunAttempt(index, step, attempt, True))


def timer(index: int, pending: Pending, due: float) -> SetTimer:
    return SetTimer(("step", index), due, TimerFired(index, pending.attempt))


# --- opening what the body awaits -------------------------------------------------------------


def open_step(s: RunState, out: list[Effect], cmd: Step[Any]) -> Outcome | None:
    """A single step that is not plain new work: replayed, cancelled, or restored mid-backoff
    (or new after all, when only a later position is journaled). None: the body is blocked."""
    act = cmd.activity
    index = s.next_index
    s.next_index += 1
    entry = s.journal.take(index, StepEntry(act.name))  # NonDeterminismError: the caller fails the run
    if entry is not None:
        value, error = outcome(entry, s.run_id)
        return shaped(value, act.result_type), error
    cancel = s.cancel
    if cancel is not None and index == cancel.index:
        return None, Cancelled(cancel.reason)
    restored = s.take_restored(index)
    check_wait(s.run_id, restored, act.name)  # NonDeterminismError: the caller fails the run
    if type(restored) is RetryWait and restored.due is not None:
        # Crashed during a retry backoff: wait out the rest of it, then retry.
        pending = Pending(cmd, None, 0, attempt=s.journal.attempts(index))
        s.active[index] = pending
        s.waits[index] = restored
        out.append(timer(index, pending, restored.due))
        s.flush_if_events(out)
        return None
    start_inline(s, out, index, cmd, s.journal.attempts(index))
    return None


def open_group(s: RunState, out: list[Effect], cmd: Gather) -> Group:
    """The steps of a gather/map: settled ones from the journal, the rest started (up to
    its concurrency limit)."""
    steps = cmd.steps
    group = Group([], single=False, tolerated=cmd.tolerated, max_concurrency=cmd.max_concurrency, size=len(steps))
    queued = group.queued = deque()
    for slot, step in enumerate(steps):
        act = step.activity
        index = s.next_index
        s.next_index += 1
        entry = s.journal.take(index, StepEntry(act.name))
        check_wait(s.run_id, s.restored_waits.get(index), act.name)
        group.indices.append(index)
        if isinstance(entry, StepEntry):
            settle(group, slot, shaped(entry.result, act.result_type), entry.error, act.name, entry.attempts)
            continue
        group.remaining += 1
        s.active[index] = Pending(step, group, slot, attempt=s.journal.attempts(index))
        queued.append(index)
    pump(s, out, group)
    return group


def open_sleep(s: RunState, out: list[Effect], cmd: Sleep) -> Group:
    group = Group([], single=True)
    index = s.next_index
    s.next_index += 1
    group.indices.append(index)
    if s.journal.take(index, SleepEntry()) is not None:
        return group
    restored = s.restored_waits.get(index)
    check_wait(s.run_id, restored, SLEEP_STEP)
    due = restored.due if restored is not None and restored.due is not None else cmd.until
    pending = Pending(None, group, 0)
    s.active[index] = pending
    group.remaining = 1
    s.waits[index] = TimerWait(step=index, due=due)
    s.waits_dirty = True
    out.append(timer(index, pending, due))
    return group


def pump(s: RunState, out: list[Effect], group: Group) -> None:
    limit = group.max_concurrency
    queued = group.queued
    while queued and (limit is None or group.running < limit):
        index = queued.popleft()
        pending = s.active[index]
        group.running += 1
        restored = s.take_restored(index)
        if type(restored) is RetryWait and restored.due is not None:
            # Crashed during a retry backoff: wait out the rest of it, then retry.
            s.waits[index] = restored
            out.append(timer(index, pending, restored.due))
        else:
            start_attempt(s, out, index, pending)


def start_attempt(s: RunState, out: list[Effect], index: int, pending: Pending) -> None:
    """Run an attempt as a task of its own (a step of a gather or map)."""
    step = pending.step
    assert step is not None
    pending.started_at = s.now
    pending.running = True
    out.append(RunAttempt(index, step, pending.attempt, False))


# --- outcomes ---------------------------------------------------------------------------------


def step_done(s: RunState, out: list[Effect], msg: StepDone) -> Outcome | None:
    """An attempt ended (or was stopped); the outcome for the body if it unblocks it."""
    if msg.index == s.inline_index and msg.attempt == s.inline_attempt:
        return inline_done(s, out, msg)
    pending = s.active.get(msg.index)
    if pending is None or pending.attempt != msg.attempt or pending.step is None or not pending.running:
        return None  # a late result of an attempt already timed out or cancelled
    pending.running = False
    out.append(CancelTimer(("step", msg.index)))  # its timeout, if it had one
    result: Outcome | None
    if msg.error is None:
        result = succeeded(s, out, msg.index, pending.step, pending.attempt, pending.started_at, msg.result)
    else:
        result = attempt_failed(s, out, msg.index, pending, msg.error)
    return None if result is None else deliver(s, out, pending, result)


def inline_done(s: RunState, out: list[Effect], msg: StepDone) -> Outcome | None:
    index, step, attempt, started = s.inline_index, s.inline_step, s.inline_attempt, s.inline_started
    assert step is not None
    s.inline_index, s.inline_step = -1, None
    if msg.error is None:
        return succeeded(s, out, index, step, attempt, started, msg.result)
    if msg.reason == "cancel":
        return None  # the cancel message that interrupted it finishes the job
    error = msg.error
    if msg.reason == "timeout":
        error = ActivityTimeoutError(step.activity.name, step.activity.timeout or 0.0)
    pending = s.active.get(index)
    if pending is None:
        # The bookkeeping of an inline step is made once it needs any (an attempt failed): a
        # step that simply succeeds never allocates one.
        pending = s.active[index] = Pending(step, None, 0, attempt=attempt)
    pending.started_at = started
    return attempt_failed(s, out, index, pending, error)


def succeeded(
    s: RunState, out: list[Effect], index: int, step: Step[Any], attempt: int, started: float, result: Any
) -> Outcome:
    """Journal a successful attempt; the checkpoint goes before the body sees the result."""
    name = step.activity.name
    if not plain(result):
        # Checked here, not left to the store, so the step (not the run) fails: retrying
        # would not help, and the body may catch it.
        try:
            encode(result, what=f"the result of step {name!r}", run_id=s.run_id)
        except PayloadError as exc:
            pending = s.active.get(index) or Pending(step, None, 0, attempt=attempt)
            pending.started_at = started
            s.active[index] = pending
            return failed_final(s, out, index, pending, "PayloadError", str(exc))
    s.steps += 1
    events: list[AnyEvent] = [
        StepStarted(ts=started, step=name, index=index, attempt=attempt),
        StepSucceeded(ts=s.now, step=name, index=index, attempt=attempt, result=result),
    ]
    s.active.pop(index, None)
    s.waits.pop(index, None)
    s.checkpoint(out, events)
    return (as_replayed(result) if step.activity.result_type is Any else result), None


def attempt_failed(s: RunState, out: list[Effect], index: int, pending: Pending, exc: BaseException) -> Outcome | None:
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
        return failed_final(s, out, index, pending, error, cause)
    now = s.now
    delay = policy.delay(pending.attempt)
    events: list[AnyEvent] = [
        StepStarted(ts=pending.started_at, step=name, index=index, attempt=pending.attempt),
        StepFailed(ts=now, step=name, index=index, attempt=pending.attempt, error=error, cause=cause),
        StepRetrying(ts=now, step=name, index=index, attempt=pending.attempt + 1, delay=delay),
    ]
    pending.attempt += 1
    pending.running = False
    due = now + delay
    s.waits[index] = RetryWait(step=index, due=due, activity=name)
    s.checkpoint(out, events)
    out.append(timer(index, pending, due))
    return None


def failed_final(
    s: RunState, out: list[Effect], index: int, pending: Pending, error: str, cause: str | None
) -> Outcome:
    step = pending.step
    assert step is not None
    name = step.activity.name
    del s.active[index]
    s.waits.pop(index, None)
    s.steps += 1
    s.checkpoint(
        out,
        [
            StepStarted(ts=pending.started_at, step=name, index=index, attempt=pending.attempt),
            StepFailed(ts=s.now, step=name, index=index, attempt=pending.attempt, error=error, cause=cause, final=True),
        ],
    )
    return None, ActivityError(name, error, cause, pending.attempt)


def timer_fired(s: RunState, out: list[Effect], msg: TimerFired) -> Outcome | None:
    """A sleep is over, a retry backoff ended, a signal wait or an attempt timed out."""
    pending = s.active.get(msg.index)
    if pending is None or pending.attempt != msg.attempt:
        return None
    wait = s.waits.pop(msg.index, None)
    result: Outcome | None
    if pending.signal is not None:  # a wait_signal timed out
        del s.active[msg.index]
        s.signal_waiters.pop(pending.signal, None)
        s.steps += 1
        s.checkpoint(out, [SignalTimedOut(ts=s.now, index=msg.index, name=pending.signal)])
        s.group = None
        return None, SignalTimeoutError(s.run_id, pending.signal, None)
    if pending.step is None:  # a durable sleep is over
        del s.active[msg.index]
        s.steps += 1
        s.checkpoint(out, [StepSucceeded(ts=s.now, step=SLEEP_STEP, index=msg.index, attempt=1)])
        result = (None, None)
    elif type(wait) is RetryWait:  # backoff over: next attempt
        if pending.group is not None:
            start_attempt(s, out, msg.index, pending)
        else:
            start_inline(s, out, msg.index, pending.step, pending.attempt)
        return None
    else:  # the timeout of an attempt running as a task
        if not pending.running:
            return None
        pending.running = False
        out.append(StopAttempt(msg.index))
        act = pending.step.activity
        result = attempt_failed(s, out, msg.index, pending, ActivityTimeoutError(act.name, act.timeout or 0.0))
    return None if result is None else deliver(s, out, pending, result)


def deliver(s: RunState, out: list[Effect], pending: Pending, result: Outcome) -> Outcome | None:
    """A finished step's outcome for the body: directly, or once its whole group is done."""
    group = pending.group
    if group is None:
        return result
    value, error = result
    if error is None:
        group.results[pending.slot] = value
    else:
        assert isinstance(error, ActivityError)
        if group.failures is None:
            group.failures = []
        group.failures.append(error)
        group.results[pending.slot] = {"error": error.error, "cause": error.cause}
    group.remaining -= 1
    group.running -= 1
    if group.remaining:
        pump(s, out, group)
        return None
    s.group = None
    return group_outcome(group)


def settle(group: Group, slot: int, result: Any, error: ErrorInfo | None, name: str, attempts: int) -> None:
    if error is None:
        group.results[slot] = result
    else:
        # A step's failure always has a name (from StepFailed.error): `or` only narrows the type.
        if group.failures is None:
            group.failures = []
        group.failures.append(ActivityError(name, error.error or "", error.cause, attempts))
        group.results[slot] = {"error": error.error, "cause": error.cause}


def group_outcome(group: Group) -> Outcome:
    if group.single:
        return (None, group.failures[0]) if group.failures else (group.results[0], None)
    if group.failures and len(group.failures) > group.tolerated:
        return None, group.failures[0]
    return group.results, None


def abandon(s: RunState, out: list[Effect], group: Group) -> None:
    """Stop everything ``group`` runs or waits on (the body will not take its outcome)."""
    for index in group.indices:
        abandon_callback(s, out, index)
        drop(s, out, index)
    group.remaining = 0


def drop(s: RunState, out: list[Effect], index: int) -> None:
    """Stop step ``index``: its running attempt and its timer."""
    pending = s.active.pop(index, None)
    s.waits.pop(index, None)
    if pending is not None:
        if pending.running:
            out.append(StopAttempt(index))
        out.append(CancelTimer(("step", index)))


def resume(out: list[Effect], result: Outcome | None) -> None:
    """Resume the body with ``result``, if the body is unblocked."""
    if result is not None:
        out.append(Resume(result[0], result[1]))
