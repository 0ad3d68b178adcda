"""Runs on top of actors: the runtime, workflows, activities, retries, timers."""

from ._context import RunContext as RunContext
from ._definitions import (
    ActivityDef as ActivityDef,
    RetryPolicy as RetryPolicy,
    WorkflowDef as WorkflowDef,
    activity as activity,
    workflow as workflow,
)
from ._run import RunCancelledError as RunCancelledError
from ._runtime import (
    RunHandle as RunHandle,
    RunInfo as RunInfo,
    Runtime as Runtime,
    open_runtime as open_runtime,
)
from ._stepinfo import StepInfo as StepInfo, step_info as step_info

__all__ = (
    "ActivityDef",
    "RetryPolicy",
    "RunCancelledError",
    "RunContext",
    "RunHandle",
    "RunInfo",
    "Runtime",
    "StepInfo",
    "WorkflowDef",
    "activity",
    "open_runtime",
    "step_info",
    "workflow",
)
