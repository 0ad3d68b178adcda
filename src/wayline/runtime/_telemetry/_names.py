"""Attribute names and trace-context keys shared by tracing and metrics."""

from __future__ import annotations

#: Keys of ``RunRecord.trace``. ``traceparent`` (and ``tracestate``) is the run's first
#: segment, the parent of every later one; rt.start stores only that. Later segments add:
SEGMENT_KEY = "wayline.segment"  # traceparent of the latest segment (absent: the first one)
SEGMENTS_KEY = "wayline.segments"  # how many segments have started, in decimal (absent: one)

RUN_ID = "wayline.run_id"
WORKFLOW = "wayline.workflow"
VERSION = "wayline.version"
STEP = "wayline.step"
ATTEMPT = "wayline.attempt"
SEGMENT = "wayline.segment"
STATUS = "wayline.status"
OUTCOME = "wayline.outcome"
