"""Durable storage: the `Store` protocol, the SQLite store (default), the PostgreSQL store
(``PostgresStore``, with the ``postgres`` extra), an in-memory store, and the records they keep
(run snapshots, history events, waits, inbox messages).

This layer imports nothing from ``wayline.actors`` or ``wayline.runtime``. History events
are also the public `wayline.history` module, which is where users meet them.
"""

from typing import TYPE_CHECKING, Any

from ._blobs import PayloadLimits as PayloadLimits
from ._cancel_keys import (
    META_KEY as CANCEL_KEYS_ENTRY,
    NOT_FOUND as PATH_NOT_FOUND,
    CancelCandidate as CancelCandidate,
    CancelKey as CancelKey,
    CancelKeyStore as CancelKeyStore,
    cancel_key as cancel_key,
    candidate as cancel_candidate,
    encode_keys as encode_cancel_keys,
    path_value as path_value,
)
from ._codec import UnreadableMessage as UnreadableMessage, decode_any as decode_any, encode as encode
from ._crypto import KeyRing as KeyRing, Sealer as Sealer
from ._events import (
    DEDUP_WINDOW as DEDUP_WINDOW,
    WAKE as EVENT_WAKE,
    Accepted as Accepted,
    EventRecord as EventRecord,
    EventStore as EventStore,
    NewEvent as NewEvent,
    encode_body as encode_body,
    event_payload as event_payload,
    matches as matches_event,
    wait_key as event_wait_key,
    wake_message as event_wake_message,
)
from ._flow import FlowStore as FlowStore, Position as Position, QueuedRun as QueuedRun
from ._leases import (
    CLAIMABLE as CLAIMABLE,
    Lease as Lease,
    Listener as Listener,
    Subscription as Subscription,
    WorkerInfo as WorkerInfo,
)
from ._memory import MemoryStore as MemoryStore
from ._pacing import (
    Debounced as Debounced,
    DebouncePush as DebouncePush,
    PacingStore as PacingStore,
    Throttled as Throttled,
    ThrottlePosition as ThrottlePosition,
    pace as pace,
)
from ._postgres_url import is_postgres_url as is_postgres_url, redact_url as redact_url
from ._records import (
    UNFINISHED as UNFINISHED,
    AnyEvent as AnyEvent,
    AnyInboxMessage as AnyInboxMessage,
    AnyWait as AnyWait,
    CallbackBeat as CallbackBeat,
    CallbackCompleted as CallbackCompleted,
    CallbackCompletion as CallbackCompletion,
    CallbackFailed as CallbackFailed,
    CallbackFailure as CallbackFailure,
    CallbackHeartbeat as CallbackHeartbeat,
    CallbackMessage as CallbackMessage,
    CallbackWait as CallbackWait,
    CallbackWaiting as CallbackWaiting,
    CancelMessage as CancelMessage,
    CancelRequest as CancelRequest,
    ChildDone as ChildDone,
    ChildEnded as ChildEnded,
    ChildMessaged as ChildMessaged,
    ChildStarted as ChildStarted,
    ChildWait as ChildWait,
    ContinuedAsNew as ContinuedAsNew,
    Custom as Custom,
    ErrorInfo as ErrorInfo,
    Event as Event,
    InboxMessage as InboxMessage,
    Patched as Patched,
    RetryWait as RetryWait,
    RunCancelled as RunCancelled,
    RunCrashed as RunCrashed,
    RunFailed as RunFailed,
    RunRecord as RunRecord,
    RunResumed as RunResumed,
    RunStarted as RunStarted,
    RunStatus as RunStatus,
    RunSucceeded as RunSucceeded,
    SignalMessage as SignalMessage,
    SignalReceived as SignalReceived,
    SignalTimedOut as SignalTimedOut,
    SignalWait as SignalWait,
    StartMessage as StartMessage,
    StepFailed as StepFailed,
    StepRetrying as StepRetrying,
    StepStarted as StepStarted,
    StepSucceeded as StepSucceeded,
    TimerWait as TimerWait,
    UpdateAccepted as UpdateAccepted,
    UpdateAnswered as UpdateAnswered,
    UpdateMessage as UpdateMessage,
    UpdateWait as UpdateWait,
    Wait as Wait,
)
from ._rotate import KeyRotation as KeyRotation
from ._schedules import (
    OVERLAP_POLICIES as OVERLAP_POLICIES,
    ScheduleAction as ScheduleAction,
    ScheduleFire as ScheduleFire,
    ScheduleRecord as ScheduleRecord,
    ScheduleRequest as ScheduleRequest,
    ScheduleSpec as ScheduleSpec,
    ScheduleStore as ScheduleStore,
    ScheduleWrite as ScheduleWrite,
)
from ._secret import (
    SealedPayload as SealedPayload,
    Secret as Secret,
    dec_hook as secret_dec_hook,
    ext_hook as secret_ext_hook,
)
from ._sqlite import SQLiteStore as SQLiteStore
from ._store import WAIT_FOR_STORE as WAIT_FOR_STORE, Store as Store, StoreHealth as StoreHealth

if TYPE_CHECKING:
    from ._postgres import PostgresStore as PostgresStore


def open_postgres_store(url: str, **options: Any) -> "PostgresStore":
    """A `PostgresStore` on ``url`` (not started), or `PostgresDriverMissingError` without asyncpg."""
    return __getattr__("PostgresStore")(url, **options)  # type: ignore[no-any-return]


def __getattr__(name: str) -> Any:
    # asyncpg is an optional extra: it is imported only when the PostgreSQL store is asked for.
    if name == "PostgresStore":
        try:
            from ._postgres import PostgresStore
        except ModuleNotFoundError as exc:
            if exc.name != "asyncpg":
                raise
            from .._errors import PostgresDriverMissingError

            raise PostgresDriverMissingError() from exc
        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = (
    "CANCEL_KEYS_ENTRY",
    "DEDUP_WINDOW",
    "EVENT_WAKE",
    "OVERLAP_POLICIES",
    "PATH_NOT_FOUND",
    "UNFINISHED",
    "WAIT_FOR_STORE",
    "Accepted",
    "AnyEvent",
    "AnyInboxMessage",
    "AnyWait",
    "CallbackBeat",
    "CallbackCompleted",
    "CallbackCompletion",
    "CallbackFailed",
    "CallbackFailure",
    "CallbackHeartbeat",
    "CallbackMessage",
    "CallbackWait",
    "CallbackWaiting",
    "CancelCandidate",
    "CancelKey",
    "CancelKeyStore",
    "CancelMessage",
    "CancelRequest",
    "ChildDone",
    "ChildEnded",
    "ChildMessaged",
    "ChildStarted",
    "ChildWait",
    "ContinuedAsNew",
    "Custom",
    "DebouncePush",
    "Debounced",
    "ErrorInfo",
    "Event",
    "EventRecord",
    "EventStore",
    "FlowStore",
    "InboxMessage",
    "KeyRing",
    "KeyRotation",
    "Lease",
    "MemoryStore",
    "NewEvent",
    "PacingStore",
    "Patched",
    "PayloadLimits",
    "Position",
    "PostgresStore",
    "QueuedRun",
    "RetryWait",
    "RunCancelled",
    "RunCrashed",
    "RunFailed",
    "RunRecord",
    "RunResumed",
    "RunStarted",
    "RunStatus",
    "RunSucceeded",
    "SQLiteStore",
    "ScheduleAction",
    "ScheduleFire",
    "ScheduleRecord",
    "ScheduleRequest",
    "ScheduleSpec",
    "ScheduleStore",
    "ScheduleWrite",
    "SealedPayload",
    "Sealer",
    "Secret",
    "SignalMessage",
    "SignalReceived",
    "SignalTimedOut",
    "SignalWait",
    "StartMessage",
    "StepFailed",
    "StepRetrying",
    "StepStarted",
    "StepSucceeded",
    "Store",
    "StoreHealth",
    "ThrottlePosition",
    "Throttled",
    "TimerWait",
    "UnreadableMessage",
    "UpdateAccepted",
    "UpdateAnswered",
    "UpdateMessage",
    "UpdateWait",
    "Wait",
    "WorkerInfo",
    "cancel_candidate",
    "cancel_key",
    "decode_any",
    "encode",
    "encode_body",
    "encode_cancel_keys",
    "event_payload",
    "event_wait_key",
    "event_wake_message",
    "matches_event",
    "pace",
    "path_value",
    "secret_dec_hook",
    "secret_ext_hook",
)
