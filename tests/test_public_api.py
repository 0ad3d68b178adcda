"""The curated public surface is pinned: any addition or removal is a deliberate change.

The top level holds what a user writes every day; every error is in ``wayline.errors``, the
events of a run's history in ``wayline.history``, and each package's face lists what the
layers above it (and users who go deeper) may use.
"""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

EXPECTED: dict[str, tuple[str, ...]] = {
    "wayline": (
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
    ),
    "wayline.errors": (
        "ActivityError",
        "ActivityTimeoutError",
        "AliasError",
        "AslDefinitionError",
        "CallbackError",
        "CallbackTokenError",
        "Cancelled",
        "ChildMachineNotFoundError",
        "DatabaseCorruptError",
        "DatabaseDeletedError",
        "DatabaseLinkedError",
        "DatabaseLockedError",
        "DatabaseOwnedError",
        "DatabaseReadOnlyError",
        "DuplicateWorkflowError",
        "EncryptionKeyError",
        "EventTimeoutError",
        "ExpressionBudgetError",
        "FlowSpecError",
        "InvalidArgumentError",
        "MetadataError",
        "MissingExtraError",
        "NonDeterminismError",
        "NotRegisteredError",
        "PayloadError",
        "RateLimitedError",
        "RedriveError",
        "ResourceError",
        "RunAlreadyFinishedError",
        "RunCancelled",
        "RunConflictError",
        "RunFailed",
        "RunNotFoundError",
        "RuntimeClosedError",
        "ScheduleConflictError",
        "ScheduleExistsError",
        "ScheduleNotFoundError",
        "ScheduleSpecError",
        "SchemaVersionError",
        "SecretDecryptError",
        "SignalPayloadError",
        "SignalTimeoutError",
        "StatesError",
        "StoreError",
        "StoreUnavailableError",
        "TelemetryConfigError",
        "UpdateNotAnsweredError",
        "UpdateRejectedError",
        "UpdateTimeoutError",
        "VarsError",
        "VersionNotFoundError",
        "WalDamagedError",
        "WaylineError",
        "WorkflowNotFoundError",
    ),
    "wayline.history": (
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
    ),
    "wayline.runtime": (
        "ActivityDef",
        "ChildHandle",
        "Concurrency",
        "Debounce",
        "Event",
        "EventSent",
        "EventTrigger",
        "ExpressionBudget",
        "JsonLogFormatter",
        "RateLimit",
        "ReplayResult",
        "ReplayVerdict",
        "RetryPolicy",
        "RunContext",
        "RunHandle",
        "RunInfo",
        "RunLogFilter",
        "Runtime",
        "RuntimeStatistics",
        "Schedule",
        "ScheduleHandle",
        "ScheduleInfo",
        "ScheduledRun",
        "Singleton",
        "StateMachine",
        "StateMachineAlias",
        "StepAttemptInfo",
        "StepInfo",
        "TelemetryProviders",
        "Throttle",
        "WorkflowDef",
        "activity",
        "check_replay",
        "configure_telemetry",
        "on_event",
        "open_runtime",
        "rotate_keys",
        "step_info",
        "version_key",
        "workflow",
    ),
    "wayline.actors": (
        "Actor",
        "ActorRef",
        "ActorStoppedError",
        "ChildSpec",
        "Clock",
        "SharedTimers",
        "Supervisor",
        "SupervisorSpec",
        "SystemClock",
        "TimerHandle",
        "run_actor",
    ),
    "wayline.persistence": (
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
    ),
    "wayline.testing": (
        "FaultInjectingStore",
        "SimulatedCrash",
        "VirtualClock",
    ),
}


@pytest.mark.parametrize("module_name", sorted(EXPECTED))
def test_all_is_pinned(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert isinstance(module.__all__, tuple), f"{module_name}.__all__ must be a tuple"
    assert module.__all__ == EXPECTED[module_name]


@pytest.mark.parametrize("module_name", sorted(EXPECTED))
def test_every_exported_name_exists(module_name: str) -> None:
    module = importlib.import_module(module_name)
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []


def test_errors_share_one_root() -> None:
    import wayline
    from wayline import _errors

    for name in wayline.__all__:
        obj = getattr(wayline, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, wayline.WaylineError), name
    for name in (
        "DatabaseCorruptError",
        "DatabaseLockedError",
        "SchemaVersionError",
    ):
        assert issubclass(getattr(_errors, name), wayline.StoreError)


def test_cancellation_signal_is_not_an_exception() -> None:
    # Conventions: runtime control signals derive from BaseException so `except Exception`
    # in user code cannot swallow them.
    from wayline import Cancelled
    from wayline.testing import SimulatedCrash

    assert not issubclass(Cancelled, Exception)
    assert not issubclass(SimulatedCrash, Exception)


def test_every_error_is_in_wayline_errors() -> None:
    import wayline
    import wayline.errors

    for name in wayline.__all__:
        obj = getattr(wayline, name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            assert getattr(wayline.errors, name) is obj, name


def test_the_event_and_the_error_of_a_cancelled_run_are_told_apart() -> None:
    import wayline
    import wayline.history

    assert issubclass(wayline.RunCancelled, wayline.WaylineError)  # handle.result() raises it
    assert not issubclass(wayline.history.RunCancelled, BaseException)  # the history's last event
    assert wayline.Cancelled is not wayline.RunCancelled  # what the body gets at its await


def test_the_package_is_typed() -> None:
    from pathlib import Path

    import wayline

    assert (Path(wayline.__file__).parent / "py.typed").is_file()


_WITHOUT_SDK = """
import sys
for name in ("opentelemetry.sdk", "opentelemetry.exporter"):
    sys.modules[name] = None  # as if the otlp extra were not installed: importing it fails
import wayline, wayline.runtime
from wayline.errors import MissingExtraError
try:
    wayline.runtime.configure_telemetry()
except MissingExtraError as exc:
    print(exc.extra, "|", exc)
"""


def test_the_core_needs_only_the_opentelemetry_api() -> None:
    # A fresh interpreter in which the SDK and the exporter cannot be imported: wayline
    # imports, and configure_telemetry says which extra to install.
    proc = subprocess.run([sys.executable, "-c", _WITHOUT_SDK], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    extra, message = proc.stdout.strip().split(" | ")
    assert extra == "otlp"
    assert "pip install 'wayline[otlp]'" in message and "configure_telemetry" in message
