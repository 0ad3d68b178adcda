"""Span names, attribute names and trace-context keys shared by tracing and metrics."""

from __future__ import annotations

# --- keys of ``RunRecord.trace`` (all values are strings) ------------------------------------
#: ``traceparent`` (and ``tracestate``): the run's root span, ended when rt.start returned.
#: The rest are written by segments, in the dict the run's snapshots share, so they reach
#: the store with the next checkpoint and cost no write of their own:
SEGMENTS_KEY = "wayline.segments"  # segments started so far, in decimal (absent: one)
SEGMENT_START_KEY = "wayline.segment.start"  # when the latest one began (epoch seconds, repr)
WAIT_KEY = "wayline.wait."  # + wait key: when an open wait began (epoch seconds, repr)
REEXECUTED_KEY = "wayline.reexecuted."  # + step key: executions lost to restarts, in decimal

# --- attributes -----------------------------------------------------------------------------
RUN_ID = "wayline.run_id"
WORKFLOW = "wayline.workflow"
VERSION = "wayline.version"
STEP = "wayline.step"
STEP_INDEX = "wayline.step.index"  # a code-first step's journal position
STEP_ID = "wayline.step.id"  # a state machine step's id ("Map/3/Work#12")
ATTEMPT = "wayline.attempt"
REEXECUTION = "wayline.reexecution"
SEGMENT = "wayline.segment"
STATUS = "wayline.status"
OUTCOME = "wayline.outcome"
ERROR = "wayline.error"
RESUME_REASON = "wayline.resume_reason"
WAIT_KIND = "wayline.wait.kind"
STATE = "wayline.state"

# --- names of the spans that are time rather than work ---------------------------------------
SLEEP_SPAN = "sleep"
BACKOFF_SPAN = "backoff"
CALLBACK_SPAN = "wait callback"
SIGNAL_SPAN = "wait signal "  # + the signal's name
EVENT_SPAN = "wait event "  # + the event's name (the events issue's waits)
QUEUED_SPAN = "queued"
PASSIVATED_SPAN = "passivated"
INTERRUPTED_SPAN = "interrupted"

#: Why a segment begins (`RunRecord` resume reasons, from the runtime).
RECOVERED = "recovered after a process restart"
RESTARTED = "restarted after a crash"  # + ": <error>"
WOKEN = "woken by"  # + " its timer" / " a message"
