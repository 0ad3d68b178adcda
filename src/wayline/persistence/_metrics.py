"""Checkpoint metrics of the group commit, through the OpenTelemetry metrics API.

Only the API is used here: the application (or ``wayline.configure_telemetry``) chooses the
SDK. Recorded once per committed batch, never per checkpoint, so the cost is the same
whatever the batch size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from opentelemetry.metrics import CallbackOptions, Histogram, MeterProvider, Observation

from .._otel import resolve_meter_provider as resolve_meter_provider  # where the store finds it
from ._store import StoreHealth

#: Bucket boundaries (seconds) for commit latencies: an fsync takes from ~50 us (NVMe, no
#: barrier) to tens of ms (a busy disk), and a group commit of thousands of rows a bit more.
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
#: Bucket boundaries for batch sizes: from one lone checkpoint to the eager-batch size and more.
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)


class CheckpointMetrics:
    """The store's instruments: commit latency and batch size of each group commit."""

    __slots__ = ("batch_size", "latency")

    def __init__(self, provider: MeterProvider) -> None:
        meter = provider.get_meter("wayline")
        self.latency: Histogram = meter.create_histogram(
            "wayline.checkpoint.duration",
            unit="s",
            description="Seconds from the oldest write of a group commit being queued until the batch is durable",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
        )
        self.batch_size: Histogram = meter.create_histogram(
            "wayline.checkpoint.batch_size",
            unit="{write}",
            description="Writes (checkpoints, run creations, inbox messages) committed in one transaction",
            explicit_bucket_boundaries_advisory=SIZE_BUCKETS,
        )

    def committed(self, size: int, seconds: float, ok: bool) -> None:
        attributes = None if ok else {"error.type": "commit_failed"}
        self.latency.record(seconds, attributes)
        self.batch_size.record(size, attributes)


def observe_health(provider: MeterProvider, health: Callable[[], Callable[[], StoreHealth] | None]) -> None:
    """Report a store's health as two gauges, read at each collection (no work between):
    ``wayline.store.degraded`` (1 while writes fail, with the status and cause as attributes)
    and ``wayline.store.held_writes`` (writes held back to be retried).

    ``health`` is a weak reference to the store's ``health`` method: a provider outlives the
    stores it observes, and must not keep them alive.
    """
    meter = provider.get_meter("wayline")

    def degraded(options: CallbackOptions) -> Iterable[Observation]:
        read = health()
        if read is None:
            return []
        now = read()
        attributes = None if now.ok else {"wayline.store.status": now.status, "wayline.store.cause": now.cause or ""}
        return [Observation(0 if now.ok else 1, attributes)]

    def held(options: CallbackOptions) -> Iterable[Observation]:
        read = health()
        return [] if read is None else [Observation(read().held)]

    meter.create_observable_gauge(
        "wayline.store.degraded",
        callbacks=[degraded],
        unit="1",
        description="1 while the store cannot write (disk full, I/O error, lock held too long, database deleted)",
    )
    meter.create_observable_gauge(
        "wayline.store.held_writes",
        callbacks=[held],
        unit="{write}",
        description="Checkpoints and other writes held back while the store cannot write, retried with backoff",
    )


def observe_worker(provider: MeterProvider, owned: Callable[[], tuple[str, int] | None]) -> None:
    """Report the unfinished runs a registered worker holds as the gauge
    ``wayline.worker.runs_owned``, with the worker id as its one attribute (one series per
    worker process, whatever the number of runs). ``owned`` returns (worker id, count), or
    None while the store is not a registered worker (or is gone: it must not be kept alive
    by the provider, which outlives it)."""
    meter = provider.get_meter("wayline")

    def read(options: CallbackOptions) -> Iterable[Observation]:
        now = owned()
        return [] if now is None else [Observation(now[1], {"wayline.worker.id": now[0]})]

    meter.create_observable_gauge(
        "wayline.worker.runs_owned",
        callbacks=[read],
        unit="{run}",
        description="Unfinished runs this worker holds the lease of (PostgreSQL; a SQLite worker runs them all)",
    )
