"""Durable storage: the `Store` protocol, the SQLite store (default), the PostgreSQL store
(``PostgresStore``, with the ``postgres`` extra) and an in-memory store.

This layer imports nothing from ``wayline.actors`` or ``wayline.runtime``.
"""

from typing import TYPE_CHECKING, Any

from ._codec import decode_any as decode_any, encode as encode
from ._leases import Lease as Lease, WorkerInfo as WorkerInfo
from ._memory import MemoryStore as MemoryStore
from ._postgres_url import is_postgres_url as is_postgres_url
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
from ._store import Store as Store

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
    "UNFINISHED",
    "AnyEvent",
    "CallbackCompleted",
    "CallbackFailed",
    "CallbackHeartbeat",
    "CallbackWaiting",
    "Custom",
    "ErrorInfo",
    "Event",
    "InboxMessage",
    "Lease",
    "MemoryStore",
    "PostgresStore",
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
    "Wait",
    "WorkerInfo",
    "decode_any",
    "encode",
)
