"""Runs on top of actors: the runtime, workflows, activities, retries, timers."""

from ._context import RunContext as RunContext
from ._definitions import (
    ActivityDef as ActivityDef,
    RetryPolicy as RetryPolicy,
    WorkflowDef as WorkflowDef,
    activity as activity,
    workflow as workflow,
)
from ._handles import RunHandle as RunHandle, RunInfo as RunInfo
from ._logging import JsonLogFormatter as JsonLogFormatter, RunLogFilter as RunLogFilter
from ._open import open_runtime as open_runtime
from ._run_state import RunCancelledError as RunCancelledError
from ._runtime import Runtime as Runtime
from ._stepinfo import StepInfo as StepInfo, step_info as step_info
from ._telemetry import TelemetryProviders as TelemetryProviders, configure_telemetry as configure_telemetry
from .asl import (
    AslDefinitionError as AslDefinitionError,
    ExpressionBudget as ExpressionBudget,
    StateMachine as StateMachine,
    StatesError as StatesError,
)

__all__ = (
    "ActivityDef",
    "AslDefinitionError",
    "ExpressionBudget",
    "JsonLogFormatter",
    "RetryPolicy",
    "RunCancelledError",
    "RunContext",
    "RunHandle",
    "RunInfo",
    "RunLogFilter",
    "Runtime",
    "StateMachine",
    "StatesError",
    "StepInfo",
    "TelemetryProviders",
    "WorkflowDef",
    "activity",
    "configure_telemetry",
    "open_runtime",
    "step_info",
    "workflow",
)
