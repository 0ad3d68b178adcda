"""wayline: an embedded durable workflow runtime for asyncio services.

Runs survive crashes: each run is an actor that checkpoints to SQLite after every step, and
a restarted process resumes every unfinished run from its last checkpoint.
"""

from ._errors import (
    ActivityError as ActivityError,
    ActivityTimeoutError as ActivityTimeoutError,
    DatabaseOwnedError as DatabaseOwnedError,
    NonDeterminismError as NonDeterminismError,
    PayloadError as PayloadError,
    RedriveError as RedriveError,
    RunAlreadyFinishedError as RunAlreadyFinishedError,
    RunCancelled as RunCancelled,
    RunConflictError as RunConflictError,
    RunFailed as RunFailed,
    RunNotFoundError as RunNotFoundError,
    SignalTimeoutError as SignalTimeoutError,
    StoreError as StoreError,
    WaylineError as WaylineError,
    WorkflowNotFoundError as WorkflowNotFoundError,
)
from .persistence import RunStatus as RunStatus
from .runtime import (
    AslDefinitionError as AslDefinitionError,
    RetryPolicy as RetryPolicy,
    RunCancelledError as RunCancelledError,
    RunContext as RunContext,
    RunHandle as RunHandle,
    RunInfo as RunInfo,
    Runtime as Runtime,
    StateMachine as StateMachine,
    StatesError as StatesError,
    StepInfo as StepInfo,
    activity as activity,
    configure_telemetry as configure_telemetry,
    open_runtime as open_runtime,
    step_info as step_info,
    workflow as workflow,
)

__version__ = "0.1.0"

__all__ = (
    "ActivityError",
    "ActivityTimeoutError",
    "AslDefinitionError",
    "DatabaseOwnedError",
    "NonDeterminismError",
    "PayloadError",
    "RedriveError",
    "RetryPolicy",
    "RunAlreadyFinishedError",
    "RunCancelled",
    "RunCancelledError",
    "RunConflictError",
    "RunContext",
    "RunFailed",
    "RunHandle",
    "RunInfo",
    "RunNotFoundError",
    "RunStatus",
    "Runtime",
    "SignalTimeoutError",
    "StateMachine",
    "StatesError",
    "StepInfo",
    "StoreError",
    "WaylineError",
    "WorkflowNotFoundError",
    "activity",
    "configure_telemetry",
    "open_runtime",
    "step_info",
    "workflow",
)
