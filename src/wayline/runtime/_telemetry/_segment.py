"""`Segment`: the telemetry of one incarnation of a run's actor.

It opens a span per step attempt (current while the activity runs, so the activity's own
spans nest in it) and learns how each attempt ended from the journal events of the run's
checkpoints (``StepSucceeded``, ``StepFailed``...), so the run's state machine knows nothing
of telemetry. Waits become spans when they end (`_waits`). A segment that resumes a run
after its process stopped records what the last checkpoint left behind (`_recovery`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from opentelemetry import context as otel_context, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, Status, StatusCode, Tracer

from ...actors import Clock
from ...persistence import (
    AnyEvent,
    AnyWait,
    ErrorInfo,
    RunRecord,
    RunStatus,
    StepFailed,
    StepRetrying,
    StepStarted,
    StepSucceeded,
)
from .._commands import SLEEP_STEP
from ..asl import StatesError
from ._exceptions import exception_attributes
from ._metrics import Metrics
from ._names import (
    ATTEMPT,
    OUTCOME,
    QUEUED_SPAN,
    REEXECUTED_KEY,
    REEXECUTION,
    RUN_ID,
    STATUS,
    STEP,
    STEP_ID,
    STEP_INDEX,
    VERSION,
    WORKFLOW,
)
from ._recovery import Recovery
from ._tracing import description, ns
from ._waits import Waits


class Segment:
    """Telemetry of one incarnation of a run actor: its span, its step spans, its waits,
    step metrics. The run actor calls these hooks only when it has a segment (something is
    configured)."""

    __slots__ = (
        "_attempts",
        "_clock",
        "_crashed",
        "_errors",
        "_failed_tasks",
        "_finished",
        "_metrics",
        "_passivation",
        "_recording",
        "_recovery",
        "_reexecuted",
        "_root",
        "_run",
        "_slow",
        "_status",
        "_trace",
        "_tracer",
        "_waits",
        "span",
    )

    def __init__(
        self,
        tracer: Tracer | None,
        metrics: Metrics | None,
        clock: Clock,
        record: RunRecord,
        span: Span | None,
        root: Context,
        crashed: dict[str, dict[str, str]],
        *,
        passivation: bool = False,
    ) -> None:
        self._tracer = tracer
        self._metrics = metrics
        self._clock = clock
        self._trace = record.trace  # shared by the run's snapshots: keys written here are stored
        self._crashed = crashed  # where a crashed segment leaves its trace for the restarted one
        self._run = (record.run_id, record.workflow, record.version)
        self.span = span
        self._root = root  # the run's root span: the parent of every span of the run
        # A run the sampler dropped gets no spans: with the usual parent-based sampling they
        # would be dropped too, after costing nearly as much as recorded ones.
        self._recording = span is not None and span.is_recording()
        self._attempts: dict[int, Span] = {}
        self._errors: dict[int, dict[str, Any]] = {}  # how failed attempts raised, until checkpointed
        # State machine attempts that failed, until the interpreter says whether it retries:
        # their span, when they ended, and their number as shown.
        self._failed_tasks: dict[str, tuple[Span, int, int]] = {}
        self._finished = False
        self._passivation = passivation  # the runtime passivates waiting runs
        self._status = record.status  # as of the last checkpoint
        self._recovery: Recovery | None = None
        self._reexecuted: dict[str, int] = {
            key.removeprefix(REEXECUTED_KEY): int(value)
            for key, value in self._trace.items()
            if key.startswith(REEXECUTED_KEY)
        }
        # Made when the run first waits: most segments of most runs never do.
        self._waits: Waits | None = None
        if record.waits:
            self._waits = self._waits_made(record.waits, record.updated_at)
        self._slow = False
        self._update_slow()

    def _waits_made(self, restored: tuple[AnyWait, ...] = (), at: float = 0.0) -> Waits | None:
        if self._tracer is None or not self._recording:
            return None
        return Waits(self._tracer, self._root, self._run[0], self._trace, restored, at)

    @property
    def root(self) -> Context:
        """The context of the run's root span (child runs of a state machine join it)."""
        return self._root

    def _update_slow(self) -> None:
        # One test on the hot path instead of three: a step is plain unless the segment is
        # recovering, a step was re-executed, or a wait (a backoff) may end when it starts.
        recovery = self._recovery
        self._slow = (recovery is not None and recovery.counting) or bool(self._reexecuted) or bool(self._waits)

    def resumed(self, recovery: Recovery) -> None:
        """This segment resumes a run whose process stopped (or whose actor crashed)."""
        self._recovery = recovery
        self._update_slow()

    # --- step attempts -------------------------------------------------------------------

    def attempt_started(self, index: int, name: str, attempt: int, inline: bool = True) -> object | None:
        """Open the attempt's span and make it current (the activity's own spans nest under
        it); returns the token for `detach`, or None when not tracing."""
        tracer = self._tracer
        if tracer is None:
            return None
        if not self._recording:
            # The activity's own spans still get the (unsampled) root as their parent, so
            # parent-based sampling drops them too instead of starting stray traces.
            return otel_context.attach(self._root)
        run_id, workflow, version = self._run
        now = self._clock.time()
        attributes: dict[str, Any] = {
            RUN_ID: run_id,
            WORKFLOW: workflow,
            VERSION: version,
            STEP: name,
            STEP_INDEX: index,
            ATTEMPT: attempt,
        }
        if self._slow:
            attributes[ATTEMPT] = self._numbered(str(index), name, attempt, now, attributes)
            if self._waits is not None:
                self._waits.attempt_started(index, now, attributes[ATTEMPT])
            if inline and self._recovery is not None:
                # The body awaits this step alone: nothing else was in flight.
                self._recovery.counting = False
                self._update_slow()
        span = tracer.start_span(f"step {name}", context=self._root, attributes=attributes, start_time=ns(now))
        self._attempts[index] = span
        return otel_context.attach(trace.set_span_in_context(span))

    def _numbered(self, key: str, name: str, attempt: int, now: float, attributes: dict[str, Any]) -> int:
        """The attempt's number in the trace: executions lost to a stopped process count, so
        a re-executed attempt continues the count (its idempotency key stays the journal's)."""
        lost = self._reexecuted.get(key, 0)
        recovery = self._recovery
        if recovery is not None and recovery.counting:
            # In flight when the last checkpoint was written: it runs again.
            recovery.lost.append((name, attributes.get(STEP_INDEX, key), attempt + lost))
            lost += 1
            self._reexecuted[key] = lost
            self._trace[REEXECUTED_KEY + key] = str(lost)
            attributes[REEXECUTION] = True
            self._update_slow()
        return attempt + lost

    def _settled(self, key: str) -> None:
        if self._reexecuted.pop(key, None) is not None:
            self._trace.pop(REEXECUTED_KEY + key, None)
            self._update_slow()

    def queued(self, index: int, since: float) -> None:
        """Attempt ``index`` waited from ``since`` until now for a place under the runtime's
        ``max_concurrent_activities``: a ``queued`` span inside its own."""
        span = self._attempts.get(index)
        if span is None or self._tracer is None:
            return
        attributes: dict[str, Any] = {RUN_ID: self._run[0], STEP_INDEX: index}
        context = trace.set_span_in_context(span, self._root)
        queued = self._tracer.start_span(QUEUED_SPAN, context=context, attributes=attributes, start_time=ns(since))
        queued.end(end_time=ns(self._clock.time()))

    def attempt_raised(self, index: int, error: BaseException) -> None:
        """Attempt ``index`` raised ``error``: kept (as span attributes: no reference to its
        traceback) for the exception event its failure's checkpoint records."""
        if self._recording and index in self._attempts:
            self._errors[index] = exception_attributes(error, type(error).__name__, str(error))

    @contextlib.contextmanager
    def task_attempt(self, state: str, step: str, attempt: int, resource: str) -> Iterator[None]:
        """A state machine Task attempt: its span, current while the resource runs (an ASL
        run's steps are its Task attempts; ``attempt`` counts from 1, ``step`` is the
        interpreter's id of the state's visit)."""
        tracer = self._tracer
        if tracer is None or not self._recording:
            yield
            return
        self._flush_failed_tasks()
        run_id, workflow, version = self._run
        now = self._clock.time()
        attributes: dict[str, Any] = {
            RUN_ID: run_id,
            WORKFLOW: workflow,
            VERSION: version,
            STEP: state,
            STEP_ID: step,
            ATTEMPT: attempt,
            "wayline.resource": resource,
        }
        if self._slow:
            attributes[ATTEMPT] = self._numbered(step, state, attempt, now, attributes)
        span = tracer.start_span(f"step {state}", context=self._root, attributes=attributes, start_time=ns(now))
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            yield
        except asyncio.CancelledError:
            span.set_attribute(OUTCOME, "interrupted")
            span.end(end_time=ns(self._clock.time()))
            raise
        except BaseException as exc:
            if isinstance(exc, StatesError):
                error, cause = exc.error or "States.TaskFailed", exc.cause
            else:
                error, cause = type(exc).__name__, str(exc)
            ended = ns(self._clock.time())
            span.set_status(Status(StatusCode.ERROR, description(error, cause)))
            span.add_event("exception", exception_attributes(exc, error, cause), timestamp=ended)
            # Ended once the interpreter says whether a retry follows (`wait_started`).
            self._failed_tasks[step] = (span, ended, attributes[ATTEMPT])
            raise
        else:
            span.end(end_time=ns(self._clock.time()))
            self._settled(step)
        finally:
            otel_context.detach(token)

    def _flush_failed_tasks(self, outcome: str = "failed") -> None:
        for step, (span, ended, _) in self._failed_tasks.items():
            span.set_attribute(OUTCOME, outcome)
            span.end(end_time=ended)
            self._settled(step)
        self._failed_tasks.clear()

    @staticmethod
    def detach(token: object) -> None:
        otel_context.detach(token)  # type: ignore[arg-type]

    def _succeeded(self, index: int, name: str, started_at: float, now: float) -> None:
        """The attempt returned and its result is handed to the checkpoint: its span ends.

        Ended now, not once the commit is durable: a done-callback on the commit per step
        cost about a sixth of the whole tracing overhead in the tracing benchmark. Commit
        latency is the ``wayline.checkpoint.duration`` metric.
        """
        if self._metrics is not None:
            self._metrics.step(self._run[1], name, now - started_at, "succeeded")
        span = self._attempts.pop(index, None)
        if span is not None:
            span.end(end_time=ns(now))
            if self._slow:
                self._settled(str(index))

    def _failed(self, ev: StepFailed, started_at: float, retry_in: float | None) -> None:
        """The attempt failed; ``retry_in`` is the backoff before the next one (None: final)."""
        if self._metrics is not None:
            self._metrics.step(self._run[1], ev.step, ev.ts - started_at, "failed" if retry_in is None else "retried")
        span = self._attempts.pop(ev.index, None)
        if span is None:
            return
        attributes = self._errors.pop(ev.index, None) or exception_attributes(None, ev.error, ev.cause)
        span.set_status(Status(StatusCode.ERROR, description(ev.error, ev.cause)))
        span.add_event("exception", attributes, timestamp=ns(ev.ts))
        if retry_in is not None:
            shown = ev.attempt + self._reexecuted.get(str(ev.index), 0) if self._slow else ev.attempt
            span.add_event("wayline.retry", {"wayline.retry.delay": retry_in, ATTEMPT: shown + 1}, timestamp=ns(ev.ts))
        else:
            span.set_attribute(OUTCOME, "failed")
            if self._slow:
                self._settled(str(ev.index))
        span.end(end_time=ns(ev.ts))

    def _steps(self, events: Sequence[AnyEvent]) -> None:
        started = 0.0
        for i, ev in enumerate(events):
            if type(ev) is StepStarted:
                started = ev.ts
            elif type(ev) is StepSucceeded:
                if ev.step != SLEEP_STEP:
                    self._succeeded(ev.index, ev.step, started, ev.ts)
            elif type(ev) is StepFailed:
                following = events[i + 1] if i + 1 < len(events) else None
                retry_in = following.delay if type(following) is StepRetrying and not ev.final else None
                self._failed(ev, started, retry_in)

    # --- a state machine's Wait states and Retry intervals ---------------------------------

    def wait_started(self, kind: str, state: str, step: str, until: float) -> Callable[[], None] | None:
        """The interpreter waits (``kind``: "wait" for a Wait state, "retry" for a Retry
        interval) in ``state`` (visit ``step``) until ``until``; returns what to call once the
        wait is over (not if it is interrupted: the next segment ends it)."""
        waits = self._waits
        if waits is None:
            waits = self._waits = self._waits_made()
            if waits is None:
                return None
        now = self._clock.time()
        if kind == "retry":
            failed = self._failed_tasks.pop(step, None)
            if failed is not None:
                span, ended, attempt = failed
                retry = {"wayline.retry.delay": until - now, ATTEMPT: attempt + 1}
                span.add_event("wayline.retry", retry, timestamp=ended)
                span.end(end_time=ended)
        waits.asl_opened(kind, state, step, until, now)

        def over() -> None:
            waits.asl_closed(step, self._clock.time())

        return over

    # --- checkpoints, the end ------------------------------------------------------------

    def checkpointed(self, events: Sequence[AnyEvent], record: RunRecord) -> None:
        """A checkpoint of ``record`` with ``events`` is being submitted: attempts it records
        end, waits it opens or closes are followed, and the run's end is recorded."""
        if self._recovery is not None:
            self._report_recovery()
        if events and (self._attempts or self._metrics is not None):
            self._steps(events)
        span = self.span
        if span is None or not self._recording:
            return
        if self._failed_tasks:
            self._flush_failed_tasks()
        waits = self._waits
        if record.waits and waits is None:
            waits = self._waits = self._waits_made()
        if waits is not None and (record.waits or waits):
            waits.checkpointed(events, record.waits, record.updated_at)
            self._update_slow()
        status = self._status = record.status
        if status.finished and not self._finished:
            self._finished = True
            span.set_attribute(STATUS, status.value)
            span.add_event("wayline.checkpoint", {STATUS: status.value}, timestamp=ns(record.updated_at))
            if status is RunStatus.FAILED:
                error = record.error or ErrorInfo("Unknown")
                span.set_status(Status(StatusCode.ERROR, description(error.error, error.cause)))

    def _report_recovery(self) -> None:
        recovery, self._recovery = self._recovery, None
        self._update_slow()
        if recovery is not None and self._tracer is not None and self._recording:
            recovery.emit(self._tracer, self._root, self._run)

    @property
    def _reported_by_next(self) -> bool:
        # A run that was only waiting, in a runtime that passivates, is left in the store by
        # recovery and comes back "woken": its next segment cannot tell this stop from a
        # passivation, so it does not report it.
        return not (self._passivation and self._status is RunStatus.WAITING)

    def close(self, error: BaseException | None, passivated: bool) -> None:
        """The actor stopped: end what is still open, and the segment span."""
        if passivated and self._metrics is not None:
            self._metrics.passivated.add(1)
        crashed = error is not None and not isinstance(error, asyncio.CancelledError)
        if self._recovery is not None and crashed:
            # The restarted actor reports this segment, not the stop this one resumed from.
            self._report_recovery()
        now = ns(self._clock.time())
        for attempt in self._attempts.values():
            attempt.set_attribute(OUTCOME, "interrupted")  # cancelled, or the actor stopped mid-attempt
            attempt.end(end_time=now)
        self._attempts.clear()
        self._errors.clear()
        self._flush_failed_tasks()
        span = self.span
        if span is None:
            return
        if error is not None and crashed:
            span.add_event("exception", exception_attributes(error, type(error).__name__, str(error)), timestamp=now)
            span.set_status(Status(StatusCode.ERROR, f"run actor crashed: {type(error).__name__}"))
            end = "crashed"
        elif self._finished:
            end = "finished"
        elif passivated:
            end = "passivated"
        elif self._reported_by_next:
            # Stopped with its process (a shutdown): the segment that resumes the run reports
            # it, from its stored start to the last checkpoint, as it does when a process is
            # killed, so that each segment is reported once whichever way its process ended.
            return
        else:
            end = "stopped"
        span.set_attribute("wayline.segment.end", end)
        if crashed:
            # The restarted actor reloads the last checkpoint, which may predate this segment.
            self._crashed[self._run[0]] = self._trace
        span.end(end_time=now)
