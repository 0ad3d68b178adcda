"""A run's state machine driven by hand: `decide` on a `RunState`, with no event loop, no
store and no clock, as h11 is tested without sockets. The messages stand for what the run's
actor would report; the effects say what it would do."""

from __future__ import annotations

from typing import Any

import pytest

from wayline import Cancelled, RetryPolicy, activity
from wayline.errors import ActivityError
from wayline.persistence import (
    CancelMessage,
    RetryWait,
    RunCancelled,
    RunFailed,
    RunRecord,
    RunStatus,
    SignalMessage,
    SignalReceived,
    SignalWait,
    StepFailed,
    StepRetrying,
    StepStarted,
    StepSucceeded,
)
from wayline.runtime import RunContext
from wayline.runtime._commands import Step, WaitSignal
from wayline.runtime.run import Inbound, decide, restore
from wayline.runtime.run._effects import Checkpoint, Finished, Resume, RunAttempt, SetTimer
from wayline.runtime.run._messages import START, Returned, StepDone, TimerFired, Yielded
from wayline.testing import VirtualClock

T0 = 1_000.0


@activity(name="charge")
async def charge(amount: int) -> dict[str, int]:
    raise NotImplementedError  # never called: the tests report its outcomes themselves


@activity(name="flaky", retry=RetryPolicy(max_attempts=2, interval=5.0))
async def flaky() -> int:
    raise NotImplementedError


def fresh(history: list[Any] | None = None, *, reason: str | None = None, inbox: Any = ()) -> Any:
    record = RunRecord(run_id="r", workflow="w", status=RunStatus.RUNNING, created_at=T0, history_seq=1)
    ctx = RunContext("r", "w", "1", VirtualClock(T0))
    state, first = restore(
        record, list(history or []), list(inbox), ctx, reason=reason, direct=False, passivate=False, now=T0
    )
    return state, first


def step(s: Any, message: Any, now: float = T0) -> list[Any]:
    s.now = now
    _, effects = decide(s, message)
    return effects


def kinds(effects: list[Any]) -> list[str]:
    return [type(e).__name__ for e in effects]


def test_a_fresh_step_runs_inline_and_is_checkpointed_before_the_body_sees_it() -> None:
    s, first = fresh()
    assert first == [START]
    assert kinds(step(s, START)) == ["Resume"]  # drive the body
    (attempt,) = step(s, Yielded(Step(charge, (5,), {})))
    assert attempt == RunAttempt(0, attempt.step, 1, True)
    done = step(s, StepDone(0, 1, result={"id": 7}), now=T0 + 2)
    assert kinds(done) == ["Checkpoint", "Resume"]  # durable first, then the body goes on
    checkpoint, resume = done
    assert [type(e) for e in checkpoint.events] == [StepStarted, StepSucceeded]
    assert checkpoint.events[1].result == {"id": 7} and checkpoint.events[1].ts == T0 + 2
    assert checkpoint.record.steps == 1 and checkpoint.record.status is RunStatus.RUNNING
    assert resume == Resume({"id": 7})


def test_a_journaled_step_is_replayed_without_running() -> None:
    history = [StepSucceeded(ts=T0, step="charge", index=0, attempt=1, result={"id": 7})]
    s, _ = fresh(history, reason="recovered after a process restart")
    step(s, START)
    effects = step(s, Yielded(Step(charge, (5,), {})))
    assert effects == [Resume({"id": 7})]  # no RunAttempt: the result comes from the journal


def test_a_body_that_changed_shape_fails_the_run_naming_both_steps() -> None:
    history = [StepSucceeded(ts=T0, step="charge", index=0, attempt=1, result=1)]
    s, _ = fresh(history, reason="recovered after a process restart")
    step(s, START)
    effects = step(s, Yielded(WaitSignal("go", None)))
    # A signal wait where the journal has a step: the body gets the error and may not catch
    # it in time to matter; the run fails if it lets it through.
    assert kinds(effects) == ["Resume"] and "charge" in str(effects[0].error)
    effects = step(s, Returned(None))
    assert kinds(effects) == ["Checkpoint", "Finished"]


def test_a_failed_attempt_is_retried_after_its_backoff() -> None:
    s, _ = fresh()
    step(s, START)
    step(s, Yielded(Step(flaky, (), {})))
    failed = step(s, StepDone(0, 1, error=ConnectionError("down")), now=T0 + 1)
    assert kinds(failed) == ["Checkpoint", "SetTimer"]  # no Resume: the body stays blocked
    checkpoint, timer = failed
    assert [type(e) for e in checkpoint.events] == [StepStarted, StepFailed, StepRetrying]
    assert checkpoint.record.waits == (RetryWait(step=0, due=T0 + 6, activity="flaky"),)
    assert timer == SetTimer(("step", 0), T0 + 6, TimerFired(0, 2))
    (retry,) = step(s, TimerFired(0, 2), now=T0 + 6)
    assert isinstance(retry, RunAttempt) and retry.attempt == 2 and retry.inline
    last = step(s, StepDone(0, 2, error=ConnectionError("still down")), now=T0 + 7)
    assert kinds(last) == ["Checkpoint", "Resume"]
    assert last[0].events[-1].final and isinstance(last[1].error, ActivityError)


def test_a_signal_delivered_twice_is_applied_once() -> None:
    s, _ = fresh()
    step(s, START)
    step(s, Yielded(WaitSignal("go", 60.0)))
    assert s.record.waits == (SignalWait(step=0, due=T0 + 60, signal="go"),)
    message = Inbound(7, SignalMessage(name="go", payload="yes", ts=T0 + 1))
    first = step(s, message, now=T0 + 1)
    assert kinds(first) == ["CancelTimer", "Resume"] and first[-1] == Resume("yes")
    assert step(s, message, now=T0 + 2) == []  # the poller found it again: nothing happens
    (checkpoint, _) = step(s, Returned("done"), now=T0 + 3)
    assert checkpoint.record.status is RunStatus.SUCCEEDED
    assert checkpoint.consumed == (7,)  # deleted from the inbox by the checkpoint that records it
    received = [e for e in checkpoint.flush if isinstance(e, SignalReceived)]
    assert [(e.payload, e.index) for e in received] == [("yes", 0)]


def test_a_cancel_is_thrown_into_the_body_at_its_await_and_recorded() -> None:
    s, _ = fresh()
    step(s, START)
    step(s, Yielded(WaitSignal("go", None)))
    effects = step(s, Inbound(3, CancelMessage(reason="user asked", ts=T0 + 1)), now=T0 + 1)
    assert kinds(effects) == ["CancelTimer", "Checkpoint", "Resume"]  # its wait is dropped
    _, checkpoint, resume = effects
    assert checkpoint.consumed == (3,) and checkpoint.record.cancel is not None
    assert isinstance(resume.error, Cancelled) and resume.error.reason == "user asked"
    # The body may compensate; however it ends, the run ends cancelled.
    ended = step(s, Returned("finished anyway"), now=T0 + 2)
    assert kinds(ended) == ["Checkpoint", "Finished"]
    assert isinstance(ended[0].flush[-1], RunCancelled)  # the history's last event
    assert ended[-1] == Finished(s.record) and s.record.status is RunStatus.CANCELLED


def test_a_cancel_accepted_before_a_crash_waits_until_the_body_has_replayed() -> None:
    history = [StepSucceeded(ts=T0, step="charge", index=0, attempt=1, result=1)]
    cancel = CancelMessage(reason="gone", ts=T0)
    s, first = fresh(history, reason="recovered after a process restart", inbox=[(9, cancel)])
    assert first == [START, Inbound(9, cancel)]  # applied once the body blocks again
    step(s, START)
    assert step(s, Yielded(Step(charge, (1,), {}))) == [Resume(1)]  # replayed
    assert step(s, Yielded(Step(charge, (2,), {}))) == []  # new work does not start
    effects = step(s, Inbound(9, cancel))
    assert kinds(effects) == ["Checkpoint", "Resume"] and isinstance(effects[-1].error, Cancelled)


def test_a_finished_run_takes_no_more_messages() -> None:
    s, _ = fresh()
    step(s, START)
    assert kinds(step(s, Returned(1))) == ["Checkpoint", "Finished"]
    assert step(s, Inbound(1, SignalMessage(name="go", ts=T0))) == []
    assert step(s, TimerFired(0, 1)) == []


def test_an_unstorable_return_value_fails_the_run_not_the_store() -> None:
    s, _ = fresh()
    step(s, START)
    effects = step(s, Returned(object()))
    assert kinds(effects) == ["Checkpoint", "Finished"]
    (event,) = effects[0].events
    assert isinstance(event, RunFailed) and event.error == "PayloadError"
    assert isinstance(effects[0], Checkpoint) and effects[0].record.status is RunStatus.FAILED


@pytest.mark.parametrize("payload", [None, {"nested": [1, 2]}])
def test_decide_needs_no_event_loop(payload: Any) -> None:
    import asyncio

    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()  # really none: everything above ran without one
    s, _ = fresh()
    step(s, START)
    step(s, Yielded(WaitSignal("go", None)))
    assert step(s, Inbound(1, SignalMessage(name="go", payload=payload, ts=T0)))[-1] == Resume(payload)
