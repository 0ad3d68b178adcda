"""Durable storage: the `Store` protocol, the SQLite store (default) and an in-memory store.

This layer imports nothing from ``wayline.actors`` or ``wayline.runtime``.
"""

from ._codec import decode_any as decode_any, encode as encode
from ._memory import MemoryStore as MemoryStore
from ._records import (
    UNFINISHED as UNFINISHED,
    AnyEvent as AnyEvent,
    CallbackCompleted as CallbackCompleted,
    CallbackFailed as CallbackFailed,
    CallbackHeartbeat as CallbackHeartbeat,
    CallbackWaiting as CallbackWaiting,
    Custom as Custom,
    ErrorInfo as ErrorInfo,
    Event as Event,
    InboxMessage as InboxMessage,
    RunCancelled as RunCancelled,
    RunCrashed as RunCrashed,
    RunFailed as RunFailed,
    RunRecord as RunRecord,
    RunResumed as RunResumed,
    RunStarted as RunStarted,
    RunStatus as RunStatus,
    RunSucceeded as RunSucceeded,
    SignalReceived as SignalReceived,
    SignalTimedOut as SignalTimedOut,
    StepFailed as StepFailed,
    StepRetrying as StepRetrying,
    StepStarted as StepStarted,
    StepSucceeded as StepSucceeded,
    Wait as Wait,
)
from ._sqlite import SQLiteStore as SQLiteStore
from ._store import WAIT_FOR_STORE as WAIT_FOR_STORE, Store as Store, StoreHealth as StoreHealth

__all__ = (
    "UNFINISHED",
    "WAIT_FOR_STORE",
    "AnyEvent",
    "CallbackCompleted",
    "CallbackFailed",
    "CallbackHeartbeat",
    "CallbackWaiting",
    "Custom",
    "ErrorInfo",
    "Event",
    "InboxMessage",
    "MemoryStore",
    "RunCancelled",
    "RunCrashed",
    "RunFailed",
    "RunRecord",
    "RunResumed",
    "RunStarted",
    "RunStatus",
    "RunSucceeded",
    "SQLiteStore",
    "SignalReceived",
    "SignalTimedOut",
    "StepFailed",
    "StepRetrying",
    "StepStarted",
    "StepSucceeded",
    "Store",
    "StoreHealth",
    "Wait",
    "decode_any",
    "encode",
)
