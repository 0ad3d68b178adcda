"""wayline: an embedded durable workflow runtime for asyncio services.

Runs survive crashes: each run is an actor that checkpoints to SQLite after every step, and
a restarted process resumes every unfinished run from its last checkpoint.

Here are the names used every day. Every error is in `wayline.errors`, the events of a run's
history in `wayline.history`, the rest of the runtime (telemetry and logging setup, statistics,
definitions' types) in `wayline.runtime`, and a test kit in `wayline.testing`.
"""

from ._errors import (
    ActivityError as ActivityError,
    CallbackError as CallbackError,
    CallbackTokenError as CallbackTokenError,
    Cancelled as Cancelled,
    EventTimeoutError as EventTimeoutError,
    PayloadError as PayloadError,
    RunAlreadyFinishedError as RunAlreadyFinishedError,
    RunCancelled as RunCancelled,
    RunFailed as RunFailed,
    RunNotFoundError as RunNotFoundError,
    SignalTimeoutError as SignalTimeoutError,
    StoreError as StoreError,
    WaylineError as WaylineError,
)
from .persistence import RunStatus as RunStatus, Secret as Secret
from .runtime import (
    Concurrency as Concurrency,
    Debounce as Debounce,
    Event as Event,
    EventSent as EventSent,
    RateLimit as RateLimit,
    RetryPolicy as RetryPolicy,
    RunContext as RunContext,
    RunHandle as RunHandle,
    RunInfo as RunInfo,
    Runtime as Runtime,
    Schedule as Schedule,
    Singleton as Singleton,
    StateMachine as StateMachine,
    StepInfo as StepInfo,
    Throttle as Throttle,
    activity as activity,
    on_event as on_event,
    open_runtime as open_runtime,
    step_info as step_info,
    workflow as workflow,
)
from .runtime.asl import StatesError as StatesError

__version__ = "0.1.0"

__all__ = (
    "ActivityError",
    "CallbackError",
    "CallbackTokenError",
    "Cancelled",
    "Concurrency",
    "Debounce",
    "Event",
    "EventSent",
    "EventTimeoutError",
    "PayloadError",
    "RateLimit",
    "RetryPolicy",
    "RunAlreadyFinishedError",
    "RunCancelled",
    "RunContext",
    "RunFailed",
    "RunHandle",
    "RunInfo",
    "RunNotFoundError",
    "RunStatus",
    "Runtime",
    "Schedule",
    "Secret",
    "SignalTimeoutError",
    "Singleton",
    "StateMachine",
    "StatesError",
    "StepInfo",
    "StoreError",
    "Throttle",
    "WaylineError",
    "activity",
    "on_event",
    "open_runtime",
    "step_info",
    "workflow",
)
