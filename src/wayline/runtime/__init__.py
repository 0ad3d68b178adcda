"""Runs on top of actors: the runtime, workflows, activities, retries, timers, signals,
callbacks, state machines and their telemetry.

Inside, each file has one job and imports only downward (tests/test_layering.py): run/ is one
run (its pure state machine and the actor that performs it), ``_runs``, ``_inbox`` and
``_passivation`` are the runs of a runtime, ``_runtime`` is the public face of them all.
"""

from ._child_handle import ChildHandle as ChildHandle
from ._context import RunContext as RunContext
from ._definitions import (
    ActivityDef as ActivityDef,
    RetryPolicy as RetryPolicy,
    WorkflowDef as WorkflowDef,
    activity as activity,
    workflow as workflow,
)
from ._events import EventSent as EventSent
from ._flow_spec import (
    Concurrency as Concurrency,
    Debounce as Debounce,
    RateLimit as RateLimit,
    Singleton as Singleton,
    Throttle as Throttle,
)
from ._handles import RunHandle as RunHandle, RunInfo as RunInfo, StepAttemptInfo as StepAttemptInfo
from ._keys import rotate_keys as rotate_keys
from ._logging import JsonLogFormatter as JsonLogFormatter, RunLogFilter as RunLogFilter
from ._open import open_runtime as open_runtime
from ._replay import (
    ReplayResult as ReplayResult,
    ReplayVerdict as ReplayVerdict,
    check_replay as check_replay,
)
from ._runtime import Runtime as Runtime
from ._schedule_handle import (
    ScheduledRun as ScheduledRun,
    ScheduleHandle as ScheduleHandle,
    ScheduleInfo as ScheduleInfo,
)
from ._schedule_spec import Schedule as Schedule
from ._statistics import RuntimeStatistics as RuntimeStatistics
from ._stepinfo import StepInfo as StepInfo, step_info as step_info
from ._telemetry import TelemetryProviders as TelemetryProviders, configure_telemetry as configure_telemetry
from ._triggers import Event as Event, EventTrigger as EventTrigger, on_event as on_event
from ._versions import StateMachineAlias as StateMachineAlias, version_key as version_key
from .asl import ExpressionBudget as ExpressionBudget, StateMachine as StateMachine

__all__ = (
    "ActivityDef",
    "ChildHandle",
    "Concurrency",
    "Debounce",
    "Event",
    "EventSent",
    "EventTrigger",
    "ExpressionBudget",
    "JsonLogFormatter",
    "RateLimit",
    "ReplayResult",
    "ReplayVerdict",
    "RetryPolicy",
    "RunContext",
    "RunHandle",
    "RunInfo",
    "RunLogFilter",
    "Runtime",
    "RuntimeStatistics",
    "Schedule",
    "ScheduleHandle",
    "ScheduleInfo",
    "ScheduledRun",
    "Singleton",
    "StateMachine",
    "StateMachineAlias",
    "StepAttemptInfo",
    "StepInfo",
    "TelemetryProviders",
    "Throttle",
    "WorkflowDef",
    "activity",
    "check_replay",
    "configure_telemetry",
    "on_event",
    "open_runtime",
    "rotate_keys",
    "step_info",
    "version_key",
    "workflow",
)
