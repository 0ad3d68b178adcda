"""`open_runtime`: a runtime on a database, with its supervisor, clock driver and inbox poller."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import warnings
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from .._errors import InvalidArgumentError
from ..actors import Clock, Supervisor, SupervisorSpec, SystemClock
from ..persistence import (
    DEDUP_WINDOW,
    KeyRing,
    MemoryStore,
    PayloadLimits,
    Sealer,
    SQLiteStore,
    Store,
    is_postgres_url,
    open_postgres_store,
)
from ._definitions import DEFAULT_ACTIVITY_THREADS, WorkflowDef
from ._runtime import Runtime
from ._versions import StateMachineAlias
from .asl import ResourceError, StateMachine


@asynccontextmanager
async def open_runtime(
    store: str | os.PathLike[str] | Store = "wayline.db",
    *,
    workflows: Iterable[WorkflowDef[Any, Any] | StateMachine | StateMachineAlias] = (),
    clock: Clock | None = None,
    supervisor: SupervisorSpec | None = None,
    max_concurrent_activities: int | None = None,
    activity_threads: int = DEFAULT_ACTIVITY_THREADS,
    worker: bool = True,
    worker_id: str | None = None,
    lease_seconds: float | None = None,
    max_runs: int | None = None,
    recover: bool | None = None,
    inbox_poll_interval: float | None = 0.1,
    passivate_after: float | None = None,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    payload_limits: PayloadLimits | None = None,
    retention: float | timedelta | None = None,
    encryption_key: bytes | str | None = None,
    encryption_keys: Mapping[str, bytes | str] | Iterable[bytes | str] | None = None,
    encrypt_payloads: bool = False,
    event_dedup_window: float = DEDUP_WINDOW,
) -> AsyncIterator[Runtime]:
    """Open the runtime on a SQLite file (default), a PostgreSQL URL, ``":memory:"`` or a `Store`.

    A worker (the default) executes runs: on entry it recovers the unfinished runs from their
    last checkpoints (on PostgreSQL, those no other live worker holds). On exit, live runs
    stop where they are; their state is durable and the next worker goes on with them. A
    client (``worker=False``) executes nothing: the runs it starts are committed for a worker.

    Args:
        store: a database path, a ``postgresql://user@host/db`` URL (the PostgreSQL store;
            needs ``pip install 'wayline[postgres]'``), ``":memory:"`` for an in-memory store,
            or a `Store`. On PostgreSQL a runtime that recovers registers as the database's
            one worker (several workers on one database come with the runtime's scale-out).
        workflows: the workflows this runtime can run (and recover): several versions of one
            workflow may be registered side by side, with the `StateMachineAlias`es that route
            between them.
        clock: the time source (``wayline.testing.VirtualClock`` in tests).
        supervisor: restart policy for crashed run actors.
        max_concurrent_activities: a cap on steps running at once across all runs.
        activity_threads: the worker threads that run sync (``def``) activities; more
            attempts than that wait for a thread. The default, ``min(32, CPUs + 4)``, is
            Python's own for I/O-bound work, which blocking activities mostly are.
        worker: execute runs (the default). On SQLite the one process that holds the
            database executes its runs (a second worker gets `DatabaseOwnedError`); on
            PostgreSQL any number of worker processes, on any hosts, share them: each
            registers with a lease, runs what it starts and claims the runs nobody holds (a
            stopped worker's, once its lease expired). ``False``: a client, which never
            executes a run: `Runtime.start` commits the run and a worker takes it within
            milliseconds; signals, cancels and callbacks are committed for the run's worker;
            ``handle.result()`` reads the run's end from the database.
        worker_id: this worker's id on PostgreSQL (``host:pid:random`` by default); shown by
            ``wayline workers list``.
        lease_seconds: how long a PostgreSQL worker's lease lasts without renewal (renewed
            every third of it): how soon the runs of a killed or paused worker move on (the
            store's own ``lease_seconds``, 10 by default).
        max_runs: on SQLite and in memory: at most this many runs of this runtime at once,
            from their start to their end (waiting ones count; child runs go on their
            parent's account); a run started beyond it is created QUEUED, durably, and starts
            as runs end, in arrival order (after its own ``Concurrency`` slot, if its workflow
            has one). On PostgreSQL: at most this many runs in memory on this worker; the runs
            it starts beyond that are left for the others to claim.
        recover: deprecated: use ``worker``.
        inbox_poll_interval: seconds between reads of the inbox for messages committed by
            other processes (``wayline`` CLI, other replicas); ``None`` to not look.
        passivate_after: seconds a run may wait (on timers or signals only) before it leaves
            memory; its due timer or a message reloads it. ``None`` (the default) keeps every
            run in memory.
        tracer_provider: where runs report their spans (OpenTelemetry); the global provider
            by default. Checked once, here: without an SDK, runs do no tracing work at all.
        meter_provider: where runs and the SQLite store report metrics; the global provider
            by default, likewise checked once. (A `SQLiteStore` passed in as ``store`` takes
            its own ``meter_provider``.)
        payload_limits: how large one stored value and a run's vars may be (256 KiB and 1 MiB
            by default: `PayloadError` names what is too large), and from what size (16 KiB)
            a value is stored once in the database's blob table instead of in every snapshot.
            (A `Store` passed in as ``store`` takes its own ``payload_limits``.)
        retention: how long finished runs are kept (seconds or a timedelta) for workflows
            without a ``retention=`` of their own; None (the default) keeps them. An owning
            runtime purges older ones once a minute, in small batches (`Runtime.purge`).
        encryption_key: the 32-byte AES-256 key that encrypts `wayline.Secret` values (and,
            with ``encrypt_payloads``, every stored value): bytes, or hex or base64 text,
            optionally as ``"id:key"``. Without it, ``WAYLINE_ENCRYPTION_KEY`` (``"[id:]key"``,
            several separated by commas, the first the current one). The keys belong to this
            runtime: another runtime in the process may use others.
        encryption_keys: older keys that still decrypt (a mapping of id to key, or a list):
            give the new key as ``encryption_key`` and the old ones here, then
            `Runtime.rotate_keys` re-encrypts what is stored with the new one.
        encrypt_payloads: encrypt every stored input, output, variable, step result and
            message payload, not only Secrets (like Temporal's payload codec); needs a key.
            Run metadata and tags stay readable: they are the search index.
        event_dedup_window: seconds an event id is remembered: ``rt.send_event`` with an id
            seen within it stores and starts nothing (24 hours by default).
    """
    if recover is not None:
        warnings.warn(
            "open_runtime(recover=...) is deprecated: use worker=True (execute runs) or worker=False "
            "(a client that only starts, signals and reads runs)",
            DeprecationWarning,
            stacklevel=3,  # through the contextmanager's __aenter__
        )
        worker = recover
    if not isinstance(worker, bool):
        raise InvalidArgumentError("open_runtime", "worker", f"must be a bool, got {worker!r}")
    if lease_seconds is not None and (
        isinstance(lease_seconds, bool) or not isinstance(lease_seconds, (int, float)) or not lease_seconds > 0
    ):
        raise InvalidArgumentError("open_runtime", "lease_seconds", f"must be a number > 0, got {lease_seconds!r}")
    if max_runs is not None and (isinstance(max_runs, bool) or not isinstance(max_runs, int) or max_runs < 1):
        raise InvalidArgumentError("open_runtime", "max_runs", f"must be an int >= 1 or None, got {max_runs!r}")
    recover = worker
    workflows = list(workflows)
    if isinstance(activity_threads, bool) or not isinstance(activity_threads, int) or activity_threads < 1:
        raise InvalidArgumentError("open_runtime", "activity_threads", f"must be an int >= 1, got {activity_threads!r}")
    for machine in workflows:
        # Before the database is touched: a machine that cannot run leaves no file behind.
        if isinstance(machine, StateMachine) and (unbound := machine.unbound_resources()):
            raise ResourceError(machine.name, unbound)
    if not isinstance(encrypt_payloads, bool):
        raise InvalidArgumentError("open_runtime", "encrypt_payloads", f"must be a bool, got {encrypt_payloads!r}")
    sealer = Sealer(
        KeyRing.from_options(encryption_key, encryption_keys), encrypt_payloads=encrypt_payloads, strict=recover
    )
    if isinstance(store, str) and store == ":memory:":
        the_store: Store = MemoryStore(payload_limits=payload_limits)
    elif is_postgres_url(store):
        the_store = open_postgres_store(str(store), meter_provider=meter_provider, payload_limits=payload_limits)
    elif isinstance(store, (str, os.PathLike)):
        the_store = SQLiteStore(store, meter_provider=meter_provider, payload_limits=payload_limits)
    else:
        the_store = store
    keeper: Any = the_store
    while not hasattr(keeper, "sealer") and hasattr(keeper, "inner"):
        keeper = keeper.inner  # a wrapper (wayline.testing.FaultInjectingStore): the store inside
    if hasattr(keeper, "sealer"):
        keeper.sealer = sealer
    elif sealer.keys:
        raise InvalidArgumentError(
            "open_runtime", "encryption_key", f"the store {type(the_store).__name__} does not encrypt"
        )
    the_clock = clock or SystemClock()
    await the_store.start()
    # A store several workers share (PostgreSQL): each worker registers (in `Runtime._open`);
    # one with a single owner (SQLite) is claimed by its worker.
    shared = recover and bool(getattr(the_store, "shared", False))
    claim = getattr(the_store, "claim_ownership", None)  # stores that can be shared have it
    if recover and claim is not None and not shared:
        try:
            claimed = claim()
            if inspect.isawaitable(claimed):  # PostgreSQL registers its worker over the network
                await claimed
        except BaseException:
            await the_store.close()
            raise
    try:
        async with Supervisor(supervisor or SupervisorSpec(), the_clock) as sup:
            # The clock's background work is owned here and ended below; no task group, so an
            # exception raised in the caller's block comes out as itself, not in a group.
            rt = Runtime(  # first: a definition it refuses leaves no clock driver behind
                the_store,
                sup,
                workflows=workflows,
                clock=the_clock,
                max_concurrent_activities=max_concurrent_activities,
                activity_threads=activity_threads,
                passivate_after=passivate_after,
                owner=recover,
                tracer_provider=tracer_provider,
                meter_provider=meter_provider,
                retention=retention,
                event_dedup_window=event_dedup_window,
                shared=shared,
                max_runs=max_runs,
                lease_seconds=float(lease_seconds or getattr(the_store, "lease_seconds", None) or 10.0),
            )
            # Idle: no store write in flight and no sync activity at work in a thread.
            threads = rt._threads
            driver = asyncio.ensure_future(the_clock.drive(lambda: the_store.pending == 0 and not threads.busy))
            try:
                await rt._open(recover=recover, inbox_poll_interval=inbox_poll_interval, worker_id=worker_id)
                yield rt
            finally:
                await rt._close()
                sup.cancel_all()
                driver.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await driver
    finally:
        await the_store.close()
