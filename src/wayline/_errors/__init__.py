"""The exception hierarchy: one root, precise subclasses that carry ids as attributes.

Each message is built in the constructor so every raise site says the same thing:
what happened, and what to do about it. The classes live in this package's modules, one per area, and are all
re-exported here.
"""

from ._base import (
    InvalidArgumentError as InvalidArgumentError,
    MissingExtraError as MissingExtraError,
    NotRegisteredError as NotRegisteredError,
    RuntimeClosedError as RuntimeClosedError,
    TelemetryConfigError as TelemetryConfigError,
    WaylineError as WaylineError,
)
from ._definitions import (
    AliasError as AliasError,
    ChildMachineNotFoundError as ChildMachineNotFoundError,
    DuplicateWorkflowError as DuplicateWorkflowError,
    ScheduleConflictError as ScheduleConflictError,
    ScheduleExistsError as ScheduleExistsError,
    ScheduleNotFoundError as ScheduleNotFoundError,
    ScheduleSpecError as ScheduleSpecError,
    VersionNotFoundError as VersionNotFoundError,
    WorkflowNotFoundError as WorkflowNotFoundError,
)
from ._events import (
    EventTimeoutError as EventTimeoutError,
    FlowSpecError as FlowSpecError,
    RateLimitedError as RateLimitedError,
)
from ._payloads import (
    MetadataError as MetadataError,
    PayloadError as PayloadError,
    SignalPayloadError as SignalPayloadError,
    VarsError as VarsError,
)
from ._runs import (
    ActivityError as ActivityError,
    ActivityTimeoutError as ActivityTimeoutError,
    CallbackError as CallbackError,
    CallbackTokenError as CallbackTokenError,
    Cancelled as Cancelled,
    ContinueAsNew as ContinueAsNew,
    NonDeterminismError as NonDeterminismError,
    RedriveError as RedriveError,
    RunAlreadyFinishedError as RunAlreadyFinishedError,
    RunCancelled as RunCancelled,
    RunConflictError as RunConflictError,
    RunFailed as RunFailed,
    RunNotFoundError as RunNotFoundError,
    SignalTimeoutError as SignalTimeoutError,
    UpdateNotAnsweredError as UpdateNotAnsweredError,
    UpdateRejectedError as UpdateRejectedError,
    UpdateTimeoutError as UpdateTimeoutError,
)
from ._secrets import (
    EncryptionKeyError as EncryptionKeyError,
    SecretDecryptError as SecretDecryptError,
)
from ._store import (
    DatabaseAuthError as DatabaseAuthError,
    DatabaseCorruptError as DatabaseCorruptError,
    DatabaseDeletedError as DatabaseDeletedError,
    DatabaseLinkedError as DatabaseLinkedError,
    DatabaseLockedError as DatabaseLockedError,
    DatabaseMissingError as DatabaseMissingError,
    DatabaseOwnedByWorkerError as DatabaseOwnedByWorkerError,
    DatabaseOwnedError as DatabaseOwnedError,
    DatabaseReadOnlyError as DatabaseReadOnlyError,
    DatabaseUnreachableError as DatabaseUnreachableError,
    LeaseLostError as LeaseLostError,
    PostgresDriverMissingError as PostgresDriverMissingError,
    SchemaVersionError as SchemaVersionError,
    StoreError as StoreError,
    StoreUnavailableError as StoreUnavailableError,
    WalDamagedError as WalDamagedError,
)
