"""The events of a run's history, as ``rt.history(run_id)`` yields them, oldest first.

Frozen msgspec Structs (``type(event).__name__`` is the event's name, ``event.ts`` its time).
`RunCancelled` here is the event that ends a cancelled run's history; the error that
``handle.result()`` raises for such a run is `wayline.RunCancelled`.
"""

from .persistence import (
    AnyEvent as AnyEvent,
    CallbackCompleted as CallbackCompleted,
    CallbackFailed as CallbackFailed,
    CallbackHeartbeat as CallbackHeartbeat,
    CallbackWaiting as CallbackWaiting,
    ChildEnded as ChildEnded,
    ChildMessaged as ChildMessaged,
    ChildStarted as ChildStarted,
    ContinuedAsNew as ContinuedAsNew,
    Custom as Custom,
    Event as Event,
    Patched as Patched,
    RunCancelled as RunCancelled,
    RunCrashed as RunCrashed,
    RunFailed as RunFailed,
    RunResumed as RunResumed,
    RunStarted as RunStarted,
    RunSucceeded as RunSucceeded,
    SignalReceived as SignalReceived,
    SignalTimedOut as SignalTimedOut,
    StepFailed as StepFailed,
    StepRetrying as StepRetrying,
    StepStarted as StepStarted,
    StepSucceeded as StepSucceeded,
    UpdateAccepted as UpdateAccepted,
    UpdateAnswered as UpdateAnswered,
)

__all__ = (
    "AnyEvent",
    "CallbackCompleted",
    "CallbackFailed",
    "CallbackHeartbeat",
    "CallbackWaiting",
    "ChildEnded",
    "ChildMessaged",
    "ChildStarted",
    "ContinuedAsNew",
    "Custom",
    "Event",
    "Patched",
    "RunCancelled",
    "RunCrashed",
    "RunFailed",
    "RunResumed",
    "RunStarted",
    "RunSucceeded",
    "SignalReceived",
    "SignalTimedOut",
    "StepFailed",
    "StepRetrying",
    "StepStarted",
    "StepSucceeded",
    "UpdateAccepted",
    "UpdateAnswered",
)
