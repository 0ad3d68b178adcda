"""The root of the hierarchy and the errors about how wayline is called or set up."""

from __future__ import annotations


class WaylineError(Exception):
    """Root of every error wayline raises on purpose."""


class InvalidArgumentError(WaylineError, ValueError, TypeError):
    """A public call got an argument of the wrong type, size or value (also a `ValueError`
    and a `TypeError`, as Python code expects of a bad argument)."""

    def __init__(self, call: str, argument: str, problem: str) -> None:
        self.call = call
        self.argument = argument
        super().__init__(f"{call}: {argument} {problem}")


class MissingExtraError(WaylineError, ImportError):
    """A feature needs packages from an optional extra of wayline that is not installed."""

    def __init__(self, feature: str, extra: str, missing: str) -> None:
        self.feature = feature
        self.extra = extra
        self.missing = missing
        super().__init__(
            f"{feature} needs the {extra!r} extra of wayline, which is not installed (missing: {missing}); "
            f"install it with: pip install 'wayline[{extra}]'"
        )


class TelemetryConfigError(WaylineError, ValueError):
    """An OpenTelemetry setting that `configure_telemetry` cannot honour (an unknown exporter
    name in ``OTEL_TRACES_EXPORTER``, a protocol this install does not have...)."""

    def __init__(self, setting: str, value: str, accepted: str) -> None:
        self.setting = setting
        self.value = value
        super().__init__(f"{setting}={value!r} is not supported by wayline's configure_telemetry: {accepted}")


class NotRegisteredError(WaylineError):
    """A function was used as a workflow or activity without the decorator."""

    def __init__(self, obj: object, kind: str) -> None:
        super().__init__(f"{obj!r} is not a wayline {kind}; decorate it with @{kind}")


class RuntimeClosedError(WaylineError):
    """The runtime was used after ``open_runtime`` exited."""

    def __init__(self) -> None:
        super().__init__("the runtime is closed; use it inside `async with open_runtime(...)`")
