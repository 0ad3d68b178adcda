"""The curated public surface is pinned: any addition or removal is a deliberate change."""

from __future__ import annotations

import importlib

import pytest

EXPECTED: dict[str, tuple[str, ...]] = {
    "wayline": (
        "ActivityError",
        "ActivityTimeoutError",
        "AslDefinitionError",
        "CallbackError",
        "CallbackTokenError",
        "ChildMachineNotFoundError",
        "DatabaseOwnedError",
        "JsonLogFormatter",
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
        "RunLogFilter",
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
    ),
    "wayline.actors": (
        "Actor",
        "ActorRef",
        "ActorStoppedError",
        "Clock",
        "Supervisor",
        "SupervisorSpec",
        "SystemClock",
        "TimerHandle",
        "run_actor",
    ),
    "wayline.persistence": (
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
    ),
    "wayline.runtime": (
        "ActivityDef",
        "AslDefinitionError",
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
    ),
    "wayline.testing": ("FaultInjectingStore", "SimulatedCrash", "VirtualClock"),
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
    from wayline import RunCancelledError
    from wayline.testing import SimulatedCrash

    assert not issubclass(RunCancelledError, Exception)
    assert not issubclass(SimulatedCrash, Exception)
