"""OpenTelemetry helpers shared by the store and the runtime (the API only, never the SDK)."""

from __future__ import annotations

from opentelemetry.metrics import MeterProvider, NoOpMeterProvider, get_meter_provider

try:  # the API's stand-in before an SDK is set globally; private, hence the guard
    from opentelemetry.metrics._internal import _ProxyMeterProvider
except ImportError:  # pragma: no cover - a future API that moved it: treat every provider as real
    _ProxyMeterProvider = NoOpMeterProvider  # type: ignore[misc, assignment]


def resolve_meter_provider(given: MeterProvider | None) -> MeterProvider | None:
    """``given`` or the global provider, or None when that is the API's no-op stand-in.

    Checked once, when a store or runtime is built: with no SDK configured, wayline then
    does no metrics work at all instead of calling no-op instruments on its hot paths.
    A global SDK provider must therefore be set before ``open_runtime``.
    """
    provider = given if given is not None else get_meter_provider()
    if isinstance(provider, (NoOpMeterProvider, _ProxyMeterProvider)):
        return None
    return provider
