"""Every error wayline raises on purpose, in one place.

All derive from `WaylineError`, except `Cancelled`, the control signal thrown into a workflow
body when its run is cancelled (a `BaseException`, so ``except Exception`` cannot swallow it).
The ones met every day are also at the top level of ``wayline``.
"""

from ._errors import (
    ActivityError as ActivityError,
    ActivityTimeoutError as ActivityTimeoutError,
    CallbackError as CallbackError,
    CallbackTokenError as CallbackTokenError,
    Cancelled as Cancelled,
    ChildMachineNotFoundError as ChildMachineNotFoundError,
    DatabaseCorruptError as DatabaseCorruptError,
    DatabaseLockedError as DatabaseLockedError,
    DatabaseOwnedError as DatabaseOwnedError,
    MissingExtraError as MissingExtraError,
    NonDeterminismError as NonDeterminismError,
    NotRegisteredError as NotRegisteredError,
    PayloadError as PayloadError,
    RedriveError as RedriveError,
    RunAlreadyFinishedError as RunAlreadyFinishedError,
    RunCancelled as RunCancelled,
    RunConflictError as RunConflictError,
    RunFailed as RunFailed,
    RunNotFoundError as RunNotFoundError,
    RuntimeClosedError as RuntimeClosedError,
    SchemaVersionError as SchemaVersionError,
    SignalTimeoutError as SignalTimeoutError,
    StoreError as StoreError,
    TelemetryConfigError as TelemetryConfigError,
    WaylineError as WaylineError,
    WorkflowNotFoundError as WorkflowNotFoundError,
)
from .runtime.asl import (
    AslDefinitionError as AslDefinitionError,
    ExpressionBudgetError as ExpressionBudgetError,
    StatesError as StatesError,
)

__all__ = (
    "ActivityError",
    "ActivityTimeoutError",
    "AslDefinitionError",
    "CallbackError",
    "CallbackTokenError",
    "Cancelled",
    "ChildMachineNotFoundError",
    "DatabaseCorruptError",
    "DatabaseLockedError",
    "DatabaseOwnedError",
    "ExpressionBudgetError",
    "MissingExtraError",
    "NonDeterminismError",
    "NotRegisteredError",
    "PayloadError",
    "RedriveError",
    "RunAlreadyFinishedError",
    "RunCancelled",
    "RunConflictError",
    "RunFailed",
    "RunNotFoundError",
    "RuntimeClosedError",
    "SchemaVersionError",
    "SignalTimeoutError",
    "StatesError",
    "StoreError",
    "TelemetryConfigError",
    "WaylineError",
    "WorkflowNotFoundError",
)
