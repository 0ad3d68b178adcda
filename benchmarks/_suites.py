"""Which scenarios make up each suite, at full size, ``--quick`` and ``--smoke``.

Quick mode is a short look at every figure: ``all --quick --repeats 1`` takes a few
minutes on a 2-core machine. Smoke mode is for the tests (``tests/benchmarks``): every row
of every suite runs its code, peers included, on a handful of items, so the harness and the
peers' code cannot rot unnoticed, in a fraction of quick's time; its figures mean nothing.
Peers that cannot finish the full size in reasonable time are time-boxed (``budget_s``) or
capped, and their row says so.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TypeVar

from ._harness import Scenario

SUITES = (
    "throughput",
    "sequential",
    "signal",
    "latency",
    "recovery",
    "mailbox",
    "asl",
    "tracing",
    "capacity",
    "listing",
    "schedules",
    "compose",
    "context",
    "events",
    "scale",
)

K = 5  # activities per run in the throughput workload

T = TypeVar("T")


@dataclass(frozen=True)
class Size:
    """How big a suite runs: ``full`` for figures, ``quick`` for a short look, ``smoke`` for the
    tests (every row's code runs, on a handful of items: its figures mean nothing)."""

    name: str

    @classmethod
    def of(cls, name: str) -> Size:
        if name not in ("full", "quick", "smoke"):
            raise ValueError(f"unknown size {name!r}: full, quick or smoke")
        return cls(name)

    def pick(self, full: T, quick: T, smoke: T | None = None) -> T:
        """The value for this size; smoke takes quick's unless it has its own."""
        if self.name == "full":
            return full
        if self.name == "smoke" and smoke is not None:
            return smoke
        return quick


# The peers' importable package names; a missing one skips the row.
DBOS = ("dbos",)
TEMPORAL = ("temporalio",)
MOTO = ("moto", "boto3")
PG = ("asyncpg",)  # the wayline-pg rows (the postgres extra); the server is checked in the child


def _requires(system: str) -> tuple[str, ...]:
    if system.startswith("dbos"):
        return DBOS
    return TEMPORAL if system == "temporal" else PG if system == "wayline-pg" else ()


def _throughput_row(system: str, func: str, n: int, size: Size, **extra: object) -> Scenario:
    return Scenario(
        suite="throughput",
        system=system,
        func=func,
        params={"n": n, "k": K, **extra},
        metric="steps_per_s",
        unit="steps/s",
        higher_is_better=True,
        group=str(n),
        baseline=system == "bare",
        requires=_requires(system),
        timeout_s=size.pick(600.0, 90.0),
        label=f"n={n} k={K}",
        also=(("cpu_us_per_step", "CPU us/step"),),
    )


def _throughput(size: Size) -> list[Scenario]:
    rows = []
    for n in size.pick((1, 100, 10_000), (1, 100, 1000), (2,)):
        rows += [
            _throughput_row("bare", "_baseline:throughput", n, size),
            # A yardstick: the per-step work of journaling a run, with no I/O at all (_floor.py).
            _throughput_row("journal-no-io", "_floor:throughput", n, size),
            _throughput_row("wayline", "_wayline:throughput", n, size, budget_s=size.pick(120.0, 20.0, 10.0)),
            # A yardstick: wayline with the cyclic garbage collector off in its process, so the
            # gap between the two rows is what collecting the live runs' objects costs.
            _throughput_row(
                "wayline-gc-off", "_wayline:throughput", n, size, budget_s=size.pick(120.0, 20.0, 10.0), gc_off=True
            ),
            _throughput_row("dbos", "_dbos:throughput", n, size, budget_s=size.pick(30.0, 5.0, 2.0)),
            # The same two on one PostgreSQL server (a fresh database each; _pg.py).
            _throughput_row(
                "wayline-pg", "_wayline:throughput", n, size, budget_s=size.pick(120.0, 20.0, 10.0), store="postgres"
            ),
            _throughput_row(
                "dbos-pg", "_dbos:throughput", n, size, budget_s=size.pick(30.0, 5.0, 2.0), store="postgres"
            ),
            _throughput_row("temporal", "_temporal:throughput", n, size, budget_s=size.pick(30.0, 6.0, 3.0)),
        ]
    return rows


def _tracing(size: Size) -> list[Scenario]:
    """The throughput workload with an SDK tracer provider (BatchSpanProcessor, exporting to
    a discarding exporter) against the same workload with no SDK: what tracing costs."""
    rows = []
    for n in size.pick((100, 1000, 10_000), (100, 1000), (10,)):
        # Every run traced (the SDK's default sampler), then a common production setting:
        # parent-based head sampling of 10% of new traces (the other runs' spans are not recorded).
        for system, traced, ratio in (
            ("wayline", False, 1.0),
            ("wayline+otel-sdk", True, 1.0),
            ("wayline+otel-sdk-10%", True, 0.1),
            # A yardstick: the same number of step spans through the SDK alone (_floor.py).
            ("otel-sdk-spans-only", True, 1.0),
        ):
            rows.append(
                Scenario(
                    suite="tracing",
                    system=system,
                    func="_floor:sdk_spans" if system == "otel-sdk-spans-only" else "_wayline:throughput",
                    params={
                        "n": n,
                        "k": K,
                        "budget_s": size.pick(120.0, 20.0),
                        "tracing": traced,
                        "sample_ratio": ratio,
                    },
                    metric="steps_per_s",
                    unit="steps/s",
                    higher_is_better=True,
                    group=str(n),
                    baseline=not traced,
                    timeout_s=size.pick(600.0, 90.0),
                    label=f"n={n} k={K}"
                    + (
                        ", no SDK"
                        if not traced
                        else ", spans only"
                        if system == "otel-sdk-spans-only"
                        else ", traced"
                        if ratio == 1.0
                        else f", {ratio:.0%} sampled"
                    ),
                    also=(("cpu_us_per_step", "CPU us/step"),),
                )
            )
    return rows


def _latency_like(suite: str, size: Size) -> list[Scenario]:
    samples = size.pick(300, 40, 5)
    slow_samples = size.pick(100, 15, 3)  # Temporal's round trips are tens of ms
    timeout = size.pick(600.0, 90.0)
    rows = []
    for system, func, n, req in (
        ("bare", f"_baseline:{suite}", samples, ()),
        ("wayline", f"_wayline:{suite}", samples, ()),
        ("dbos", f"_dbos:{suite}", samples, DBOS),
        ("temporal", f"_temporal:{suite}", slow_samples, TEMPORAL),
    ):
        rows.append(
            Scenario(
                suite=suite,
                system=system,
                func=func,
                params={"samples": n},
                metric="p50_ms",
                unit="ms p50",
                higher_is_better=False,
                baseline=system == "bare",
                requires=req,
                timeout_s=timeout,
                label=f"{n} samples" + (" (3 steps)" if suite == "latency" else ""),
                also=(("p99_ms", "p99"),),
            )
        )
    return rows


def _sequential(size: Size) -> list[Scenario]:
    steps = size.pick(1000, 200, 20)
    timeout = size.pick(600.0, 90.0)
    rows = []
    for system, func, n, req in (
        ("fsync", "_baseline:fsync", steps, ()),
        ("bare", "_baseline:sequential", steps, ()),
        ("wayline", "_wayline:sequential", steps, ()),
        ("dbos", "_dbos:sequential", steps, DBOS),
        ("temporal", "_temporal:sequential", steps, TEMPORAL),
    ):
        rows.append(
            Scenario(
                suite="sequential",
                system=system,
                func=func,
                params={"steps": n},
                metric="us_per_step",
                unit="us/step",
                higher_is_better=False,
                baseline=system == "fsync",
                requires=req,
                timeout_s=timeout,
                label=f"{n} steps" if system != "fsync" else f"{n} commits",
            )
        )
    return rows


def _recovery(size: Size) -> list[Scenario]:
    n = size.pick(10_000, 1000, 50)
    # DBOS starts a few hundred workflows a second on SQLite; 10,000 would take
    # minutes just to set up, so it runs at a capped N next to a bare row of the same N.
    n_dbos = size.pick(1000, 200, 20)
    timeout = size.pick(900.0, 120.0)
    rows = []
    for system, func, count, req in (
        ("bare", "_baseline:recovery", n, ()),
        ("wayline", "_wayline:recovery", n, ()),
        ("bare", "_baseline:recovery", n_dbos, ()),
        ("dbos", "_dbos:recovery", n_dbos, DBOS),
    ):
        rows.append(
            Scenario(
                suite="recovery",
                system=system,
                func=func,
                params={"n": count},
                metric="resume_s",
                unit="s to resume",
                higher_is_better=False,
                group=str(count),
                baseline=system == "bare",
                requires=req,
                prepare=True,
                also=(("complete_s", "all done in"),),
                timeout_s=timeout,
                label=f"n={count}",
            )
        )
    return rows


# All-in-memory runs parked on a timed signal wait cost about 12.6 KB each (measured at
# 100,000): a million would take ~13 GB of a 2-core, 24 GiB machine shared with other work,
# and about 6 minutes to recover, so that row stops here.
MAILBOX_IN_MEMORY_CAP = 100_000


def _mailbox(size: Size) -> list[Scenario]:
    """Memory per waiting run (target < 1 KB) and signal -> result of a passivated run."""
    samples = size.pick(200, 50, 5)
    rows = []
    for n in size.pick((100_000, 1_000_000), (5000,), (200,)):
        loaded = min(n, MAILBOX_IN_MEMORY_CAP)
        capped = f", capped at {loaded:,} of {n:,} (~13 GB for all)" if loaded < n else ""
        for system, func, count, extra, label in (
            ("bare", "_baseline:waiting_memory", n, {}, "asyncio task per run, RSS growth"),
            (
                "wayline",
                "_wayline_mailbox:waiting_memory",
                loaded,
                {"passivate": False},
                f"all in memory{capped}, RSS growth of a fresh process",
            ),
            (
                "wayline",
                "_wayline_mailbox:waiting_memory",
                n,
                {"passivate": True},
                "passivated, RSS growth of a fresh process",
            ),
        ):
            rows.append(
                Scenario(
                    suite="mailbox",
                    system=system,
                    func=func,
                    params={"n": count, "samples": samples, **extra},
                    metric="bytes_per_run",
                    unit="B/waiting run",
                    higher_is_better=False,
                    group=str(n),
                    baseline=system == "bare",
                    prepare=system == "wayline",
                    # A million runs take minutes to create (the prepare phase) on 2 cores.
                    timeout_s=size.pick(1800.0, 180.0),
                    label=f"n={count:,}, {label}",
                    also=(("reload_ms", "signal->result ms p50"), ("reload_p99_ms", "p99")),
                )
            )
    return rows


def _asl(size: Size) -> list[Scenario]:
    cases = size.pick(0, 60, 5)  # 0 = every case
    executions = size.pick(2000, 200, 10)
    moto_executions = size.pick(200, 30, 3)
    timeout = size.pick(900.0, 120.0)

    def row(system: str, func: str, group: str, baseline: bool, **params: object) -> Scenario:
        return Scenario(
            suite="asl",
            system=system,
            func=func,
            params=dict(params),
            metric="executions_per_s",
            unit="exec/s",
            higher_is_better=True,
            group=group,
            baseline=baseline,
            requires=MOTO if system == "moto" else (),
            timeout_s=timeout,
            label=(
                ("conformance, all cases" if not cases else f"conformance, {cases} cases")
                if group == "conformance"
                else f"10-state, {params['executions']} runs"
            ),
        )

    items = size.pick(10_000, 1000, 20)

    def map_row(mode: str) -> Scenario:
        # What durable child runs cost: a distributed Map against the same Map run inline.
        return Scenario(
            suite="asl",
            system="wayline",
            func="_wayline_asl:map_items",
            params={"items": items, "mode": mode},
            metric="items_per_s",
            unit="items/s",
            higher_is_better=True,
            group="map",
            baseline=mode == "INLINE",
            timeout_s=timeout,
            label=f"Map {mode.lower()}, {items} items",
        )

    return [
        row("moto", "_moto:conformance", "conformance", True, cases=cases),
        row("wayline", "_wayline_asl:conformance", "conformance", False, cases=cases),
        row("moto", "_moto:ten_states", "10-state", True, executions=moto_executions),
        row("wayline", "_wayline_asl:ten_states", "10-state", False, executions=executions),
        map_row("INLINE"),
        map_row("DISTRIBUTED"),
    ]


def _capacity(size: Size) -> list[Scenario]:
    """N live actors, each answering one ask (the test suite once ran 100,000 of these)."""
    rows = []
    for n in size.pick((100_000,), (20_000,), (500,)):
        for system in ("bare", "wayline"):
            rows.append(
                Scenario(
                    suite="capacity",
                    system=system,
                    func=f"_capacity:{system}",
                    params={"n": n},
                    metric="us_per_actor",
                    unit="us/actor",
                    higher_is_better=False,
                    group=str(n),
                    baseline=system == "bare",
                    timeout_s=size.pick(600.0, 120.0),
                    label=f"n={n:,} live actors, one ask each",
                    also=(("bytes_per_actor", "B/actor"),),
                )
            )
    return rows


def _listing(size: Size) -> list[Scenario]:
    """One page of runs (20, newest first) for each filter `wayline runs list` offers, out of
    10,000 runs (the baseline) and out of 1,000,000: an index range scan costs the same at both."""
    from ._wayline_listing import FILTERS

    sizes = size.pick((10_000, 1_000_000), (10_000, 50_000), (2_000, 4_000))
    return [
        Scenario(
            suite="listing",
            system="wayline",
            func="_wayline_listing:listing",
            params={"n": n, "samples": size.pick(300, 50, 5)},
            metric="worst_p50_ms",
            unit="ms p50, slowest filter",
            higher_is_better=False,
            baseline=n == sizes[0],
            timeout_s=size.pick(900.0, 120.0),
            label=f"n={n:,}",
            also=tuple((f"{name}_p50_ms", name) for name in FILTERS),
        )
        for n in sizes
    ]


def _schedules(size: Size) -> list[Scenario]:
    """Fire lag at N schedules: spread over their period, and all at once (see _schedules)."""
    n = size.pick(1000, 1000, 20)
    seconds = size.pick(30.0, 10.0, 2.0)
    rows = []
    for shape, period in (("spread", 10.0), ("burst", 5.0)):
        for system in ("bare", "wayline"):
            rows.append(
                Scenario(
                    suite="schedules",
                    system=system,
                    func="_schedules:baseline" if system == "bare" else "_schedules:wayline",
                    params={"n": n, "period": period, "seconds": seconds, "shape": shape},
                    metric="p50_ms",
                    unit="ms p50",
                    higher_is_better=False,
                    group=shape,
                    baseline=system == "bare",
                    timeout_s=size.pick(600.0, 180.0),
                    label=f"{n:,} schedules every {period:g}s, {shape}, {seconds:g}s",
                    also=(("p99_ms", "p99"), ("max_ms", "max"), ("fires", "fires")),
                )
            )
    return rows


def _compose(size: Size) -> list[Scenario]:
    """Update round trip against signal round trip; continue-as-new at scale (see _compose)."""
    samples = size.pick(2000, 300, 5)
    rows = [
        Scenario(
            suite="compose",
            system="wayline",
            func="_compose:roundtrip",
            params={"kind": kind, "samples": samples},
            metric="p50_ms",
            unit="ms p50",
            higher_is_better=False,
            group="roundtrip",
            baseline=kind == "signal",
            timeout_s=size.pick(600.0, 120.0),
            label=f"{kind} round trip, {samples} one at a time",
            also=(("p99_ms", "p99"),),
        )
        for kind in ("signal", "update")
    ]
    iterations = size.pick(100_000, 5_000, 20)
    rows += [
        Scenario(
            suite="compose",
            system="wayline",
            func="_compose:eternal",
            params={"iterations": iterations, "mode": mode},
            metric="iterations_per_s",
            unit="iterations/s",
            higher_is_better=True,
            group="eternal",
            baseline=mode == "one",
            timeout_s=size.pick(1800.0, 300.0),
            label=f"{iterations:,} iterations, {'one segment' if mode == 'one' else 'continue-as-new each'}",
            also=(("history_events", "history events"), ("history_rows", "rows"), ("rss_growth_kb", "RSS growth KB")),
        )
        for mode in ("one", "continue")
    ]
    return rows


def _context(size: Size) -> list[Scenario]:
    """Bytes written per checkpoint of a run holding a 10 MiB variable: without offload (the
    baseline: the snapshot carries it every step) and with it (stored once, referenced). The
    run without offload takes fewer steps: each writes the whole variable again."""
    var = size.pick(10 << 20, 10 << 20, 64 << 10)
    rows = []
    for offload, steps in ((False, size.pick(100, 20, 5)), (True, size.pick(1000, 100, 5))):
        rows.append(
            Scenario(
                suite="context",
                system="wayline",
                func="_wayline_context:checkpoint_bytes",
                params={"size": var, "steps": steps, "offload": offload},
                metric="bytes_per_step",
                unit="bytes written per step",
                higher_is_better=False,
                baseline=not offload,
                timeout_s=size.pick(900.0, 300.0),
                label=f"{'offload' if offload else 'no offload'}, {var >> 10:,} KiB var, {steps} steps",
                also=(("total_mb", "MiB in all"), ("step_ms", "ms/step")),
            )
        )
    # Encryption: throughput with encrypt_payloads=True against without (the ratio), and what
    # one Secret costs to encrypt and decrypt.
    runs, steps = size.pick(400, 100, 4), size.pick(5, 5, 2)
    for encrypt in (False, True):
        rows.append(
            Scenario(
                suite="context",
                system="wayline",
                func="_wayline_secrets:throughput",
                params={"runs": runs, "steps": steps, "encrypt": encrypt},
                metric="runs_per_s",
                unit="runs/s",
                higher_is_better=True,
                group="encryption",
                baseline=not encrypt,
                timeout_s=size.pick(600.0, 300.0),
                label=f"encrypt_payloads={encrypt}, {runs} runs x {steps} steps",
                also=(("steps_per_s", "steps/s"), ("cpu_us_per_step", "CPU µs/step")),
            )
        )
    rows.append(
        Scenario(
            suite="context",
            system="wayline",
            func="_wayline_secrets:secret_costs",
            params={"n": size.pick(20_000, 5_000, 50)},
            metric="encrypt_us",
            unit="µs to encrypt a Secret",
            higher_is_better=False,
            group="secret",
            baseline=True,
            label="one Secret in vars: seal, and open",
            also=(("decrypt_us", "µs to decrypt"),),
        )
    )
    return rows


def _events(size: Size) -> list[Scenario]:
    """Events accepted per second (one by one, in batches), runs started from events with and
    without a concurrency key against DBOS queues, and send_event-to-wake latency (see _events)."""
    n = size.pick(5000, 1000, 20)
    rows = [
        Scenario(
            suite="events",
            system="wayline",
            func="_events:accept",
            params={"n": n, "batch": batch},
            metric="events_per_s",
            unit="events/s",
            higher_is_better=True,
            group="accept",
            baseline=batch == 1,
            timeout_s=size.pick(900.0, 300.0),
            label=f"{n:,} events accepted, {'one by one' if batch == 1 else f'in batches of {batch}'}",
        )
        for batch in (1, 100)
    ]
    runs = size.pick(2000, 500, 20)
    for keys in (0, 10):
        group = "runs-limit" if keys else "runs"
        label = f"{runs:,} runs from events, " + (f"Concurrency(5) per key over {keys} keys" if keys else "no limit")
        rows.append(
            Scenario(
                suite="events",
                system="wayline",
                func="_events:runs",
                params={"n": runs, "keys": keys},
                metric="runs_per_s",
                unit="runs/s",
                higher_is_better=True,
                group=group,
                timeout_s=size.pick(900.0, 300.0),
                label=label,
            )
        )
        rows.append(
            Scenario(
                suite="events",
                system="dbos",
                func="_events:dbos_runs",
                params={"n": runs, "keys": keys, "budget_s": size.pick(60.0, 20.0, 10.0)},
                metric="runs_per_s",
                unit="runs/s",
                higher_is_better=True,
                group=group,
                baseline=True,
                requires=DBOS,
                timeout_s=size.pick(300.0, 120.0),
                label=label.replace("runs from events", "runs enqueued").replace(
                    "Concurrency(5) per key", "partition_concurrency=5"
                ),
            )
        )
    samples = size.pick(2000, 300, 5)
    rows.append(
        Scenario(
            suite="events",
            system="wayline",
            func="_events:wake",
            params={"samples": samples},
            metric="p50_ms",
            unit="ms p50",
            higher_is_better=False,
            group="wake",
            baseline=True,  # alone in its group: its figure is against the 2 ms target
            timeout_s=size.pick(600.0, 120.0),
            label=f"send_event to a waiting run's wake, {samples} one at a time (target < 2 ms)",
            also=(("p99_ms", "p99"),),
        )
    )
    return rows


def _scale(size: Size) -> list[Scenario]:
    """Steps/s with 1, 2 and 4 worker processes on one PostgreSQL database (a client starts the
    runs), against the throughput suite's dbos-pg row at the same N on the same server; and the
    failover of a killed worker's runs to the other of two (see _scale)."""
    n = size.pick(2000, 500, 10)
    rows = [
        Scenario(
            suite="scale",
            system=f"wayline-pg-{workers}w",
            func="_scale:throughput",
            # wait_s: a run that never ends fails the row then, not at the child's timeout.
            params={"n": n, "k": K, "workers": workers, "wait_s": size.pick(120.0, 60.0, 60.0)},
            metric="steps_per_s",
            unit="steps/s",
            higher_is_better=True,
            group="workers",
            baseline=workers == 1,
            requires=PG,
            timeout_s=size.pick(600.0, 180.0),
            label=f"{workers} worker process{'es' if workers > 1 else ''}, n={n} k={K}",
            also=(
                ("cpu_us_per_step", "workers' CPU us/step"),
                ("client_cpu_us_per_step", "client's"),
                ("server_cpu_us_per_step", "server's"),
                ("cores_busy", "cores busy"),
            ),
        )
        for workers in (1, 2, 4)
    ]
    # The throughput suite's own dbos-pg row (a fresh database on the same server), in this group.
    dbos = _throughput_row("dbos-pg", "_dbos:throughput", n, size, budget_s=size.pick(30.0, 5.0, 2.0), store="postgres")
    rows.append(replace(dbos, suite="scale", group="workers", label=f"one process, n={n} k={K}"))
    # A short lease, so that the figure is mostly the failover's own work; smoke's is shorter still.
    lease = size.pick(3.0, 3.0, 1.0)
    for runs in size.pick((100, 1000), (100,), (6,)):
        rows.append(
            Scenario(
                suite="scale",
                system="wayline-pg-failover",
                func="_scale:failover",
                params={"n": runs, "lease": lease, "steps": size.pick(20, 20, 8), "pause": size.pick(0.25, 0.25, 0.1)},
                metric="failover_s",
                unit="s from kill to the last run resumed",
                higher_is_better=False,
                group=f"failover-{runs}",
                baseline=True,  # alone in its group: its figure is against lease + 1 s
                requires=PG,
                timeout_s=size.pick(600.0, 180.0),
                label=f"2 workers, {runs} runs, lease {lease:g}s, one SIGKILLed",
                also=(("p50_s", "p50"), ("moved", "runs moved"), ("all_resumed_s", "every run resumed in")),
            )
        )
    return rows


def build(suite: str, size: Size | str) -> list[Scenario]:
    """The scenarios of ``suite`` (or of every suite for ``all``) at ``size``:
    ``"full"``, ``"quick"`` or ``"smoke"``."""
    size = size if isinstance(size, Size) else Size.of(size)
    if suite == "all":
        return [s for name in SUITES for s in build(name, size)]
    if suite == "throughput":
        return _throughput(size)
    if suite == "sequential":
        return _sequential(size)
    if suite in ("signal", "latency"):
        return _latency_like(suite, size)
    if suite == "recovery":
        return _recovery(size)
    if suite == "mailbox":
        return _mailbox(size)
    if suite == "asl":
        return _asl(size)
    if suite == "tracing":
        return _tracing(size)
    if suite == "capacity":
        return _capacity(size)
    if suite == "listing":
        return _listing(size)
    if suite == "schedules":
        return _schedules(size)
    if suite == "compose":
        return _compose(size)
    if suite == "context":
        return _context(size)
    if suite == "events":
        return _events(size)
    if suite == "scale":
        return _scale(size)
    raise ValueError(f"unknown suite {suite!r}; choose from {', '.join((*SUITES, 'all'))}")
