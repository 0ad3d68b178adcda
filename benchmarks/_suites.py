"""Which scenarios make up each suite, with full and ``--quick`` parameters.

Quick mode exists for CI (``tests/benchmarks``): the same code paths at sizes
that keep ``all --quick --repeats 1`` around two minutes on a 2-core machine.
Peers that cannot finish the full size in reasonable time are time-boxed
(``budget_s``) or capped, and their row says so.
"""

from __future__ import annotations

from ._harness import Scenario

SUITES = ("throughput", "sequential", "signal", "latency", "recovery", "mailbox", "asl", "tracing", "listing")

K = 5  # activities per run in the throughput workload

# The peers' importable package names; a missing one skips the row.
DBOS = ("dbos",)
TEMPORAL = ("temporalio",)
MOTO = ("moto", "boto3")


def _throughput_row(system: str, func: str, n: int, quick: bool, **extra: object) -> Scenario:
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
        requires=DBOS if system == "dbos" else TEMPORAL if system == "temporal" else (),
        timeout_s=90.0 if quick else 600.0,
        label=f"n={n} k={K}",
        also=(("cpu_us_per_step", "CPU us/step"),),
    )


def _throughput(quick: bool) -> list[Scenario]:
    rows = []
    for n in (1, 100, 1000) if quick else (1, 100, 10_000):
        rows += [
            _throughput_row("bare", "_baseline:throughput", n, quick),
            # A yardstick: the per-step work of journaling a run, with no I/O at all (_floor.py).
            _throughput_row("journal-no-io", "_floor:throughput", n, quick),
            _throughput_row("wayline", "_wayline:throughput", n, quick, budget_s=20.0 if quick else 120.0),
            _throughput_row("dbos", "_dbos:throughput", n, quick, budget_s=5.0 if quick else 30.0),
            _throughput_row("temporal", "_temporal:throughput", n, quick, budget_s=6.0 if quick else 30.0),
        ]
    return rows


def _tracing(quick: bool) -> list[Scenario]:
    """The throughput workload with an SDK tracer provider (BatchSpanProcessor, exporting to
    a discarding exporter) against the same workload with no SDK: what tracing costs."""
    rows = []
    for n in (100, 1000) if quick else (100, 1000, 10_000):
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
                        "budget_s": 20.0 if quick else 120.0,
                        "tracing": traced,
                        "sample_ratio": ratio,
                    },
                    metric="steps_per_s",
                    unit="steps/s",
                    higher_is_better=True,
                    group=str(n),
                    baseline=not traced,
                    timeout_s=90.0 if quick else 600.0,
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


def _latency_like(suite: str, quick: bool) -> list[Scenario]:
    samples = 40 if quick else 300
    slow_samples = 15 if quick else 100  # Temporal's round trips are tens of ms
    timeout = 90.0 if quick else 600.0
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


def _sequential(quick: bool) -> list[Scenario]:
    steps = 200 if quick else 1000
    timeout = 90.0 if quick else 600.0
    rows = []
    for system, func, n, req in (
        ("fsync", "_baseline:fsync", steps, ()),
        ("bare", "_baseline:sequential", steps, ()),
        ("wayline", "_wayline:sequential", steps, ()),
        ("dbos", "_dbos:sequential", steps, DBOS),
        ("temporal", "_temporal:sequential", min(steps, 200 if quick else 1000), TEMPORAL),
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


def _recovery(quick: bool) -> list[Scenario]:
    n = 1000 if quick else 10_000
    # DBOS starts a few hundred workflows a second on SQLite; 10,000 would take
    # minutes just to set up, so it runs at a capped N next to a bare row of the same N.
    n_dbos = 200 if quick else 1000
    timeout = 120.0 if quick else 900.0
    rows = []
    for system, func, size, req in (
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
                params={"n": size},
                metric="resume_s",
                unit="s to resume",
                higher_is_better=False,
                group=str(size),
                baseline=system == "bare",
                requires=req,
                prepare=True,
                also=(("complete_s", "all done in"),),
                timeout_s=timeout,
                label=f"n={size}",
            )
        )
    return rows


# All-in-memory runs parked on a timed signal wait cost about 12.6 KB each (measured at
# 100,000): a million would take ~13 GB of a 2-core, 24 GiB machine shared with other work,
# and about 6 minutes to recover, so that row stops here.
MAILBOX_IN_MEMORY_CAP = 100_000


def _mailbox(quick: bool) -> list[Scenario]:
    """Memory per waiting run (target < 1 KB) and signal -> result of a passivated run."""
    samples = 50 if quick else 200
    rows = []
    for n in (5000,) if quick else (100_000, 1_000_000):
        loaded = min(n, MAILBOX_IN_MEMORY_CAP)
        capped = f", capped at {loaded:,} of {n:,} (~13 GB for all)" if loaded < n else ""
        for system, func, size, extra, label in (
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
                    params={"n": size, "samples": samples, **extra},
                    metric="bytes_per_run",
                    unit="B/waiting run",
                    higher_is_better=False,
                    group=str(n),
                    baseline=system == "bare",
                    prepare=system == "wayline",
                    # A million runs take minutes to create (the prepare phase) on 2 cores.
                    timeout_s=180.0 if quick else 1800.0,
                    label=f"n={size:,}, {label}",
                    also=(("reload_ms", "signal->result ms p50"), ("reload_p99_ms", "p99")),
                )
            )
    return rows


def _asl(quick: bool) -> list[Scenario]:
    cases = 60 if quick else 0  # 0 = every case
    executions = 200 if quick else 2000
    moto_executions = 30 if quick else 200
    timeout = 120.0 if quick else 900.0

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

    items = 1000 if quick else 10_000

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


def _listing(quick: bool) -> list[Scenario]:
    """One page of runs (20, newest first) for each filter `wayline runs list` offers, out of
    10,000 runs (the baseline) and out of 1,000,000: an index range scan costs the same at both."""
    from ._wayline_listing import FILTERS

    rows = []
    for n in (10_000, 50_000) if quick else (10_000, 1_000_000):
        rows.append(
            Scenario(
                suite="listing",
                system="wayline",
                func="_wayline_listing:listing",
                params={"n": n, "samples": 50 if quick else 300},
                metric="worst_p50_ms",
                unit="ms p50, slowest filter",
                higher_is_better=False,
                baseline=n == 10_000,
                timeout_s=120.0 if quick else 900.0,
                label=f"n={n:,}",
                also=tuple((f"{name}_p50_ms", name) for name in FILTERS),
            )
        )
    return rows


def build(suite: str, quick: bool) -> list[Scenario]:
    """The scenarios of ``suite`` (or of every suite for ``all``)."""
    if suite == "all":
        return [s for name in SUITES for s in build(name, quick)]
    if suite == "throughput":
        return _throughput(quick)
    if suite == "sequential":
        return _sequential(quick)
    if suite in ("signal", "latency"):
        return _latency_like(suite, quick)
    if suite == "recovery":
        return _recovery(quick)
    if suite == "mailbox":
        return _mailbox(quick)
    if suite == "asl":
        return _asl(quick)
    if suite == "tracing":
        return _tracing(quick)
    if suite == "listing":
        return _listing(quick)
    raise ValueError(f"unknown suite {suite!r}; choose from {', '.join((*SUITES, 'all'))}")
