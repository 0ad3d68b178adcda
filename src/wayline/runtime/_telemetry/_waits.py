"""Time a run spends waiting, as spans with their real start and end.

A wait opens when a checkpoint first records it in the run's waits (a sleep, a signal wait, a
callback wait, a retry backoff) and closes when a checkpoint no longer does; the events of
that checkpoint say when and how it ended (the signal arrived, the timer fired...). A wait
often outlives the segment that opened it (passivation, a restart), so when it began is kept
in the run's trace context (``wayline.wait.<position>``), which the run's snapshots carry:
the segment that sees it end, in whatever process, gives the span its real start. The span is
made when the wait ends, with both times given, and is a child of the run's root.

State machines' Wait states and Retry intervals are not among the run's waits (the
interpreter keeps them in its own snapshot): the interpreter reports them through a hook,
with a label that names the state's visit, and they become the same spans.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.trace import Span, Tracer

from ...persistence import (
    AnyEvent,
    AnyWait,
    CallbackCompleted,
    CallbackFailed,
    CallbackHeartbeat,
    Custom,
    SignalReceived,
    SignalTimedOut,
    StepSucceeded,
)
from .._commands import SLEEP_STEP
from ._names import (
    ATTEMPT,
    BACKOFF_SPAN,
    CALLBACK_SPAN,
    EVENT_SPAN,
    OUTCOME,
    RUN_ID,
    SIGNAL_SPAN,
    SLEEP_SPAN,
    STATE,
    STEP,
    STEP_ID,
    STEP_INDEX,
    WAIT_KEY,
    WAIT_KIND,
)
from ._tracing import ns

#: The span of each kind of wait; a signal's or an event's name follows. A new kind of wait
#: in the run's snapshot (``Wait.kind``) becomes a span by adding it here: "event" is the
#: events issue's ``ctx.wait_for_event`` (its `Wait` subclass names the event in ``name``).
SPAN_NAMES = {
    "timer": SLEEP_SPAN,
    "retry": BACKOFF_SPAN,
    "callback": CALLBACK_SPAN,
    "signal": SIGNAL_SPAN,
    "event": EVENT_SPAN,
}


class OpenWait:
    """A wait the run is in: when it began, and what its span will say."""

    __slots__ = ("attributes", "beats", "due", "name", "since")

    def __init__(self, name: str, since: float, due: float | None, attributes: dict[str, Any]) -> None:
        self.name = name
        self.since = since
        self.due = due
        self.attributes = attributes
        self.beats: list[float] = []  # heartbeats seen while it was open (callback waits)


def _describe(run_id: str, wait: AnyWait) -> tuple[str, dict[str, Any]]:
    kind = wait.kind
    attributes: dict[str, Any] = {RUN_ID: run_id, WAIT_KIND: kind}
    if wait.step >= 0:
        attributes[STEP_INDEX] = wait.step
    name = SPAN_NAMES.get(kind, kind)
    if kind in ("signal", "event"):
        name += wait.name
        attributes[f"wayline.{kind}.name"] = wait.name
    elif kind in ("callback", "retry"):
        attributes[STEP] = wait.name  # a callback's label (its step), a backoff's activity
        if kind == "callback" and wait.step < 0:
            attributes[STEP_ID] = wait.name
    if wait.due is not None:
        attributes["wayline.wait.due"] = wait.due
    return name, attributes


def _ended(kind: str, step: int, events: Sequence[AnyEvent], default: float) -> tuple[float, str]:
    """When and how the wait at ``step`` ended, from the events of the checkpoint that shows
    it gone (a wait given up, e.g. by a cancel, ends at the checkpoint: "abandoned")."""
    for ev in events:
        if type(ev) is SignalReceived and ev.index == step and kind == "signal":
            return ev.ts, "received"
        if type(ev) is SignalTimedOut and ev.index == step:
            return ev.ts, "timed_out"
        if type(ev) is StepSucceeded and ev.index == step and ev.step == SLEEP_STEP:
            return ev.ts, "fired"
        if type(ev) is CallbackCompleted and ev.index == step:
            return ev.ts, "completed"
        if type(ev) is CallbackFailed and ev.index == step:
            return ev.ts, "timed_out" if ev.error.startswith("States.") else "failed"
        if type(ev) is Custom and kind == "callback" and step < 0:
            # A state machine's callback task: its history has Step Functions' events only.
            outcome = _TASK_OUTCOMES.get(ev.name)
            if outcome is not None:
                return ev.ts, outcome
    return default, "abandoned"


_TASK_OUTCOMES = {"TaskSucceeded": "completed", "TaskFailed": "failed", "TaskTimedOut": "timed_out"}


class Waits:
    """The open waits of one run, seen from one segment, and their spans once they end."""

    __slots__ = ("_asl", "_open", "_root", "_run_id", "_trace", "_tracer")

    def __init__(
        self,
        tracer: Tracer,
        root: Context,
        run_id: str,
        trace: dict[str, str],
        restored: tuple[AnyWait, ...],
        at: float,
    ) -> None:
        self._tracer = tracer
        self._root = root
        self._run_id = run_id
        self._trace = trace
        self._open: dict[int, OpenWait] = {}
        self._asl: dict[str, OpenWait] = {}
        for wait in restored:  # waits that began before this segment: their start is stored
            stored = trace.get(f"{WAIT_KEY}{wait.step}")
            self._start(wait, float(stored) if stored else at)

    def __bool__(self) -> bool:
        return bool(self._open)

    def _start(self, wait: AnyWait, since: float) -> None:
        name, attributes = _describe(self._run_id, wait)
        self._open[wait.step] = OpenWait(name, since, wait.due, attributes)
        self._trace[f"{WAIT_KEY}{wait.step}"] = repr(since)

    def _end(self, step: int, wait: OpenWait, until: float, outcome: str) -> None:
        del self._open[step]
        self._trace.pop(f"{WAIT_KEY}{step}", None)
        self.emit(wait, until, outcome)

    def emit(self, wait: OpenWait, until: float, outcome: str) -> Span:
        attributes = wait.attributes
        attributes[OUTCOME] = outcome
        span = self._tracer.start_span(wait.name, context=self._root, attributes=attributes, start_time=ns(wait.since))
        for beat in wait.beats:
            span.add_event("wayline.callback.heartbeat", timestamp=ns(beat))
        span.end(end_time=ns(max(until, wait.since)))
        return span

    def checkpointed(self, events: Sequence[AnyEvent], waits: tuple[AnyWait, ...], at: float) -> None:
        """A checkpoint at ``at`` records ``waits``, with ``events``: close the waits that
        are gone, open the new ones; a callback wait whose due time moved had a heartbeat."""
        now = {w.step: w for w in waits}
        for step, wait in list(self._open.items()):
            current = now.get(step)
            kind = wait.attributes[WAIT_KIND]
            if kind == "callback":
                # A code-first run journals its heartbeats; a state machine's show as a new
                # heartbeat deadline.
                beats = [ev.ts for ev in events if type(ev) is CallbackHeartbeat and ev.index == step]
                if not beats and current is not None and current.due != wait.due:
                    beats = [at]
                wait.beats += beats
                if current is not None:
                    wait.due = current.due
            if current is None or (current.kind == "retry") != (kind == "retry"):
                until, outcome = _ended(str(kind), step, events, at)
                self._end(step, wait, until, outcome)
        for step, current in now.items():
            if step not in self._open:
                self._start(current, at)

    def attempt_started(self, step: int, at: float, attempt: int) -> None:
        """An attempt of step ``step`` starts: the backoff before it, if any, is over."""
        wait = self._open.get(step)
        if wait is not None and wait.attributes[WAIT_KIND] == "retry":
            wait.attributes[ATTEMPT] = attempt
            self._end(step, wait, at, "retried")

    # --- a state machine's Wait states and Retry intervals ----------------------------------

    def asl_opened(self, kind: str, state: str, label: str, until: float, at: float) -> None:
        key = f"{WAIT_KEY}{label}"
        stored = self._trace.get(key)
        since = float(stored) if stored else at
        self._trace[key] = repr(since)
        attributes: dict[str, Any] = {
            RUN_ID: self._run_id,
            WAIT_KIND: "timer" if kind == "wait" else "retry",
            STATE: state,
            STEP_ID: label,
            "wayline.wait.due": until,
        }
        if kind == "retry":
            attributes[STEP] = state
        self._asl[label] = OpenWait(SLEEP_SPAN if kind == "wait" else BACKOFF_SPAN, since, until, attributes)

    def asl_closed(self, label: str, at: float) -> None:
        wait = self._asl.pop(label, None)
        if wait is not None:
            self._trace.pop(f"{WAIT_KEY}{label}", None)
            self.emit(wait, at, "fired" if wait.attributes[WAIT_KIND] == "timer" else "retried")
