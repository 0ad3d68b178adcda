"""Errors about runs and their steps: lookups, conflicts, outcomes, activities, signals, updates, callbacks."""

from __future__ import annotations

from typing import Any

from ._base import WaylineError


class RunNotFoundError(WaylineError):
    """No run with this id exists in the store."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"no run with id {run_id!r}; check the id, or list runs with rt.list_runs()")


class RunAlreadyFinishedError(WaylineError):
    """An operation needs a live run, but the run has already ended."""

    def __init__(self, run_id: str, status: str, action: str) -> None:
        self.run_id = run_id
        self.status = status
        super().__init__(f"cannot {action} run {run_id!r}: it has already finished ({status})")


class RunConflictError(WaylineError):
    """rt.start was called with an existing run_id but a different workflow."""

    def __init__(self, run_id: str, existing: str, requested: str) -> None:
        self.run_id = run_id
        super().__init__(
            f"run {run_id!r} already exists as workflow {existing!r}, not {requested!r}; use a different run_id"
        )


class NonDeterminismError(WaylineError):
    """On replay, the workflow asked for a different step than the journal recorded."""

    def __init__(self, run_id: str, index: int, journaled: str, requested: str) -> None:
        self.run_id = run_id
        self.index = index
        self.journaled = journaled
        self.requested = requested
        super().__init__(
            f"run {run_id!r}: step #{index} was {journaled!r} when the run was checkpointed, but "
            f"the workflow code now asks for {requested!r} at that position; step names and order "
            "must stay stable for a run in flight (guard the change with ctx.patched, or register it as a new "
            "version beside the old one; `wayline replay` checks runs against new code before a deploy)"
        )


class RunFailed(WaylineError):
    """The run ended in FAILED; raised by ``RunHandle.result()``.

    Attributes:
        run_id: the failed run.
        error: the error name (an exception type name, or an ASL error such as ``States.Timeout``);
            None when the failure has no name (a state machine's Fail state without ``Error``).
        cause: a human-readable cause.
    """

    def __init__(self, run_id: str, error: str | None, cause: str | None) -> None:
        self.run_id = run_id
        self.error = error
        self.cause = cause
        what = ": ".join(part for part in (error, cause) if part)
        super().__init__(f"run {run_id!r} failed: {what}" if what else f"run {run_id!r} failed")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.run_id, self.error, self.cause))


class RunCancelled(WaylineError):
    """The run ended in CANCELLED; raised by ``RunHandle.result()``."""

    def __init__(self, run_id: str, reason: str | None) -> None:
        self.run_id = run_id
        self.reason = reason
        super().__init__(f"run {run_id!r} was cancelled" + (f": {reason}" if reason else ""))


class Cancelled(BaseException):
    """Thrown into a workflow body at the await where its run is cancelled (``rt.cancel``).

    A `BaseException`, as trio's ``Cancelled``: ``except Exception`` in workflow code cannot
    swallow it. Catch it explicitly (or use ``finally``) to run compensation steps, then let it
    propagate; the run ends CANCELLED and ``handle.result()`` raises `RunCancelled`.

    Attributes:
        reason: the reason given to ``rt.cancel``, if any.
    """

    def __init__(self, reason: str | None = None) -> None:
        self.reason = reason
        super().__init__(reason or "run cancelled")


class ContinueAsNew(BaseException):
    """Raised by ``ctx.continue_as_new(input)``: the run's current segment ends and the run
    goes on, under the same run id, from the top of its body with ``input``, a fresh history
    and a fresh journal.

    A `BaseException` for the same reason as `Cancelled`: ``except Exception`` in workflow
    code must not stop it. Do not catch it.

    Attributes:
        input: the input of the next segment.
        version: the version the next segment runs (None: the run's own).
    """

    def __init__(self, input: Any = None, version: str | None = None) -> None:
        self.input = input
        self.version = version
        super().__init__("the run continues as new")


class ActivityError(WaylineError):
    """A step failed for good (retries exhausted or a non-retryable error).

    Raised inside the workflow at the ``await ctx.run(...)`` that failed, so the workflow can
    catch it and compensate; uncaught, it fails the run with ``error``/``cause``.
    """

    def __init__(self, step: str, error: str, cause: str | None, attempts: int) -> None:
        self.step = step
        self.error = error
        self.cause = cause
        self.attempts = attempts
        super().__init__(f"step {step!r} failed after {attempts} attempt(s): {error}: {cause}")


class ActivityTimeoutError(WaylineError):
    """One attempt of a step ran past its timeout (raised per attempt, then retried)."""

    def __init__(self, step: str, timeout: float) -> None:
        self.step = step
        self.timeout = timeout
        super().__init__(f"step {step!r} did not finish within its timeout of {timeout:g}s")


class SignalTimeoutError(WaylineError):
    """``ctx.wait_signal`` waited longer than its timeout; catch it in the workflow to go on."""

    def __init__(self, run_id: str, name: str, timeout: float | None) -> None:
        self.run_id = run_id
        self.name = name
        self.timeout = timeout
        after = f" after {timeout:g}s" if timeout is not None else ""
        super().__init__(f"run {run_id!r}: no signal {name!r} arrived{after}")


class UpdateRejectedError(WaylineError):
    """``rt.update`` was refused: by the workflow's validator (nothing was written), or by
    the run itself (``upd.reject(error)``, recorded: a retry with the same update id gets it
    again).

    Attributes:
        run_id, name, update_id: the update.
        error: the error name; ``cause`` the reason.
    """

    def __init__(self, run_id: str, name: str, update_id: str, error: str, cause: str | None) -> None:
        self.run_id = run_id
        self.name = name
        self.update_id = update_id
        self.error = error
        self.cause = cause
        why = f"{error}: {cause}" if cause else error
        super().__init__(f"update {name!r} ({update_id}) of run {run_id!r} was rejected: {why}")


class UpdateTimeoutError(WaylineError):
    """``rt.update`` got no answer within its ``timeout``. The update was accepted and may
    still be applied: call ``rt.update`` again with the same ``update_id`` for its answer."""

    def __init__(self, run_id: str, name: str, update_id: str, timeout: float) -> None:
        self.run_id = run_id
        self.name = name
        self.update_id = update_id
        self.timeout = timeout
        super().__init__(
            f"update {name!r} of run {run_id!r} got no answer within {timeout:g}s; it was accepted and may still "
            f"be applied: call rt.update again with update_id={update_id!r} to wait for its answer"
        )


class UpdateNotAnsweredError(WaylineError):
    """The run ended without answering the update (it never reached ``ctx.wait_update`` for
    it, or took it and never replied)."""

    def __init__(self, run_id: str, name: str, update_id: str, status: str) -> None:
        self.run_id = run_id
        self.name = name
        self.update_id = update_id
        self.status = status
        super().__init__(
            f"run {run_id!r} ended ({status}) without answering update {name!r} ({update_id}); "
            "only a run that waits with ctx.wait_update and replies answers updates"
        )


class RedriveError(WaylineError):
    """``rt.redrive`` cannot restart this run (it did not fail, or its kind cannot be redriven)."""

    def __init__(self, run_id: str, reason: str) -> None:
        self.run_id = run_id
        super().__init__(f"cannot redrive run {run_id!r}: {reason}")


class CallbackTokenError(WaylineError):
    """``rt.complete_callback`` / ``fail_callback`` / ``heartbeat`` got a token that no run is
    waiting on: malformed, never issued, already used, timed out, or its run has ended."""

    def __init__(self, reason: str, run_id: str | None = None) -> None:
        self.reason = reason
        self.run_id = run_id
        super().__init__(f"callback token rejected: {reason}")


class CallbackError(ActivityError):
    """A ``ctx.wait_for_callback`` ended in failure: ``rt.fail_callback(token, error, cause)``,
    or a timeout, with ``error`` ``"States.Timeout"`` (the whole wait) or
    ``"States.HeartbeatTimeout"`` (no heartbeat in time). Catch it (or `ActivityError`) in the
    workflow to go on."""

    def __init__(self, step: str, error: str, cause: str | None) -> None:
        super().__init__(step, error, cause, 1)
        self.args = (f"callback of step {step!r} failed: {error}: {cause}",)

    def __str__(self) -> str:
        return str(self.args[0])
