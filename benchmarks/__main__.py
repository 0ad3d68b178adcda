"""``python -m benchmarks <suite> [--json] [--quick | --smoke] [--repeats N] [--seed S]``.

Runs each scenario of the suite in a fresh child process, ``--repeats`` times,
and prints a table of medians with the ratio of each row to its suite's
baseline (measured in this same invocation). ``--json`` prints one JSON
document instead, for machines. The throughput suite also writes a PNG plot to
``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ._harness import (
    RESULTS_DIR,
    Outcome,
    Progress,
    attach_ratios,
    find,
    format_table,
    plot_throughput,
    run_scenario,
)
from ._suites import SUITES, build


def _cpu_ratio(a: Outcome, b: Outcome) -> str:
    # CPU per step too: on a shared machine it moves less with others' load than steps/s.
    cpu_a, cpu_b = a.metrics.get("cpu_us_per_step"), b.metrics.get("cpu_us_per_step")
    return f" (CPU per step {cpu_a:.0f} vs {cpu_b:.0f} us)" if cpu_a and cpu_b else ""


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"


#: DESIGN.md section 6, as restated in 2026-12.
THROUGHPUT_TARGET = 0.35  # wayline/bare at 10,000 runs x 5 steps
THROUGHPUT_TARGET_N = "10000"
TRACED_TARGET = 0.9  # traced/untraced, as a share of the bound the SDK's own spans set
SAMPLED_TARGET = 0.85  # traced/untraced with head sampling (10% of runs)
WAITING_TARGET_BYTES = 3 * 1024  # a live waiting run, all in memory
PASSIVATED_TARGET_BYTES = 100  # a passivated waiting run
SIGNAL_TARGET_MS = 1.0
RECOVERY_TARGET_S = 2.0  # 10,000 interrupted runs resumed


def _tracing_targets(outcomes: list[Outcome], g: str) -> list[str]:
    """DESIGN section 6: traced/untraced >= 0.9 x the bound the SDK's own spans set (the
    ``otel-sdk-spans-only`` row: the same spans, made with no workflow); with head sampling
    (10% of runs), traced/untraced >= 0.85. Side by side, from this invocation."""
    lines: list[str] = []
    u = find(outcomes, "tracing", "wayline", g)
    t = find(outcomes, "tracing", "wayline+otel-sdk", g)
    o = find(outcomes, "tracing", "otel-sdk-spans-only", g)
    s = find(outcomes, "tracing", "wayline+otel-sdk-10%", g)
    if not (u and u.value):
        return lines
    bound = o.value / (o.value + u.value) if o and o.value else None  # untraced time + the spans' time
    if t and t.value:
        ratio = t.value / u.value
        against = (
            f"; the SDK's spans alone bound it at {bound:.2f}: {ratio / bound:.2f} of the bound "
            f"(target >= {TRACED_TARGET}): {_verdict(ratio / bound >= TRACED_TARGET)}"
            if bound
            else ""
        )
        lines.append(f"tracing n={g}: traced/untraced throughput = {ratio:.2f}{_cpu_ratio(t, u)}{against}")
    if s and s.value:
        ratio = s.value / u.value
        lines.append(
            f"tracing n={g}: with 10% of runs sampled, traced/untraced = {ratio:.2f} "
            f"(target >= {SAMPLED_TARGET}): {_verdict(ratio >= SAMPLED_TARGET)}{_cpu_ratio(s, u)}"
        )
    return lines


def _throughput_targets(outcomes: list[Outcome], g: str) -> list[str]:
    lines: list[str] = []
    w, b = find(outcomes, "throughput", "wayline", g), find(outcomes, "throughput", "bare", g)
    if w and b and w.value and b.value:
        ratio = w.value / b.value
        floor = find(outcomes, "throughput", "journal-no-io", g)
        yardstick = f"; journal-no-io/bare = {floor.value / b.value:.2f}" if floor and floor.value else ""
        no_gc = find(outcomes, "throughput", "wayline-gc-off", g)
        if no_gc and no_gc.value:
            yardstick += f"; wayline-gc-off/bare = {no_gc.value / b.value:.2f}{_cpu_ratio(no_gc, b)}"
        if g == THROUGHPUT_TARGET_N:
            verdict = f" (target >= {THROUGHPUT_TARGET}): {_verdict(ratio >= THROUGHPUT_TARGET)}"
        else:
            verdict = f" (the target is set at n={THROUGHPUT_TARGET_N})"
        lines.append(f"throughput n={g}: wayline/bare = {ratio:.2f}{verdict}{_cpu_ratio(w, b)}{yardstick}")
    for peer in ("dbos", "temporal"):
        p = find(outcomes, "throughput", peer, g)
        if not (w and p and w.value and p.value is not None):
            continue
        boxed = f" ({peer} time-boxed: partial run)" if "time-boxed" in (p.note or "") else ""
        if p.value > 0:
            lines.append(f"throughput n={g}: wayline/{peer} = {w.value / p.value:.1f}x{boxed}")
        else:
            lines.append(f"throughput n={g}: {peer} finished no step in its time box")
    wp, dp = find(outcomes, "throughput", "wayline-pg", g), find(outcomes, "throughput", "dbos-pg", g)
    if wp and dp and wp.value and dp.value:
        boxed = " (dbos-pg time-boxed: partial run)" if "time-boxed" in (dp.note or "") else ""
        ratio = wp.value / dp.value
        lines.append(
            f"throughput n={g}: wayline-pg/dbos-pg = {ratio:.1f}x (target >= 100x): {_verdict(ratio >= 100)}{boxed}"
        )
    return lines


SCALE_TARGET = 1.6  # 2 workers / 1 worker, where the server has a core to spare
FAILOVER_MARGIN_S = 1.0  # a killed worker's runs resume elsewhere within lease + this


def _cores() -> str:
    """How many cores this machine has, and whether the PostgreSQL server is on it."""
    from urllib.parse import urlsplit

    from ._pg import SERVER

    local = urlsplit(SERVER).hostname in (None, "", "127.0.0.1", "localhost", "::1")  # None: a Unix socket
    where = "shared by the workers, the client and the PostgreSQL server" if local else "the server is elsewhere"
    return f"{os.cpu_count()} cores, {where}"


def _scale_targets(outcomes: list[Outcome]) -> list[str]:
    """Issue 15: 2 workers >= 1.6 x one where the server has a core to spare; wayline on
    PostgreSQL >= 100 x DBOS on PostgreSQL; a killed worker's runs resume within lease + 1 s."""
    lines: list[str] = []
    one = find(outcomes, "scale", "wayline-pg-1w", "workers")
    if one and one.value:
        for count in (2, 4):
            w = find(outcomes, "scale", f"wayline-pg-{count}w", "workers")
            if w and w.value:
                ratio = w.value / one.value
                verdict = f" (target >= {SCALE_TARGET}): {_verdict(ratio >= SCALE_TARGET)}" if count == 2 else ""
                lines.append(f"scale: {count} workers / 1 = {ratio:.2f}{verdict}{_cpu_ratio(w, one)}; {_cores()}")
        d = find(outcomes, "scale", "dbos-pg", "workers")
        if d and d.value:
            boxed = " (dbos-pg time-boxed: partial run)" if "time-boxed" in (d.note or "") else ""
            ratio = one.value / d.value
            lines.append(
                f"scale: 1 worker process / dbos-pg = {ratio:.1f}x (target >= 100x): {_verdict(ratio >= 100)}{boxed}"
            )
    for o in outcomes:
        if o.scenario.suite == "scale" and o.scenario.system == "wayline-pg-failover" and o.value is not None:
            lease = float(o.scenario.params["lease"])
            limit = lease + FAILOVER_MARGIN_S
            lines.append(
                f"failover, {o.scenario.params['n']} runs: the last of the killed worker's runs resumed "
                f"{o.value:.2f}s after the kill (target <= lease + {FAILOVER_MARGIN_S:g}s = {limit:g}s): "
                f"{_verdict(o.value <= limit)}"
            )
    return lines


def _targets(outcomes: list[Outcome]) -> list[str]:
    """The DESIGN.md section 6 targets (2026-12 restatement), checked against this
    invocation's figures, each with "met" or "NOT MET"."""
    lines: list[str] = []
    for g in sorted({o.scenario.group for o in outcomes if o.scenario.suite == "throughput"}, key=int):
        lines += _throughput_targets(outcomes, g)
    for g in sorted({o.scenario.group for o in outcomes if o.scenario.suite == "tracing"}, key=int):
        lines += _tracing_targets(outcomes, g)
    lines += _scale_targets(outcomes)
    w, b = find(outcomes, "sequential", "wayline"), find(outcomes, "sequential", "bare")
    f = find(outcomes, "sequential", "fsync")
    if w and b and w.value and b.value:
        ratio = w.value / b.value
        per_fsync = f" ({w.value / f.value:.2f} x one fsync)" if f and f.value else ""
        lines.append(
            f"sequential: wayline per-step/bare per-step = {ratio:.2f} (target <= 1.0): {_verdict(ratio <= 1.0)}"
            f"{per_fsync}"
        )
    w = find(outcomes, "signal", "wayline")
    if w and w.value is not None:
        ok = w.value < SIGNAL_TARGET_MS
        lines.append(f"signal: wayline p50 = {w.value:.3f} ms (target < {SIGNAL_TARGET_MS:g} ms): {_verdict(ok)}")
    for o in outcomes:
        if o.scenario.suite == "mailbox" and o.scenario.system == "wayline" and o.value is not None:
            p = o.scenario.params
            passivated = bool(p.get("passivate"))
            how = "passivated" if passivated else "all in memory"
            target = PASSIVATED_TARGET_BYTES if passivated else WAITING_TARGET_BYTES
            reload = f"; signal->result p50 {o.metrics['reload_ms']:.2f} ms" if "reload_ms" in o.metrics else ""
            lines.append(
                f"mailbox n={p['n']:,} ({how}): {o.value:,.0f} bytes per waiting run "
                f"(target <= {target:,} B): {_verdict(o.value <= target)}{reload}"
            )
        if o.scenario.suite == "recovery" and o.scenario.system == "wayline" and o.value:
            n = int(o.scenario.group)
            # The target is 10,000 runs within 2 s; a smaller N is scaled, not judged as met.
            verdict = _verdict(o.value <= RECOVERY_TARGET_S) if n >= 10_000 else "the target is set at n=10,000"
            lines.append(
                f"recovery n={o.scenario.group}: wayline resumed in {o.value:.2f} s "
                f"(target: 10,000 within {RECOVERY_TARGET_S:g} s): {verdict}"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("suite", choices=(*SUITES, "all"))
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--quick", action="store_true", help="small sizes: a short look at every figure")
    sizes.add_argument(
        "--smoke",
        action="store_true",
        help="the smallest sizes that run every row's code, for the tests; its figures mean nothing",
    )
    parser.add_argument("--repeats", type=int, default=3, help="children per scenario (median)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated inputs")
    parser.add_argument("--no-plot", action="store_true", help="do not write the PNG plot")
    parser.add_argument(
        "--systems",
        help="comma-separated systems to run (e.g. bare,wayline); baselines always run",
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=RESULTS_DIR,
        help=f"where the JSON results and the plot go (default {RESULTS_DIR})",
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")

    size = "smoke" if args.smoke else "quick" if args.quick else "full"
    scenarios = build(args.suite, size)
    if args.systems:
        wanted = {name.strip() for name in args.systems.split(",")}
        # The baselines stay: without them no row has a ratio.
        scenarios = [s for s in scenarios if s.baseline or s.system in wanted]
    progress = Progress(total=len(scenarios) * args.repeats)
    started = time.perf_counter()
    outcomes = [run_scenario(s, args.repeats, args.seed, progress) for s in scenarios]
    attach_ratios(outcomes)
    elapsed = time.perf_counter() - started

    plot_msg = None
    if not args.no_plot and any(o.scenario.suite == "throughput" for o in outcomes):
        plot_msg = plot_throughput(outcomes, args.results_dir / "throughput.png")
        sys.stderr.write(plot_msg + "\n")

    meta: dict[str, Any] = {
        "suite": args.suite,
        "quick": args.quick,
        "size": size,
        "repeats": args.repeats,
        "seed": args.seed,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "elapsed_s": round(elapsed, 1),
        "plot": plot_msg,
    }
    targets = _targets(outcomes)
    doc = {"meta": meta, "targets": targets, "results": [o.to_json() for o in outcomes]}
    args.results_dir.mkdir(parents=True, exist_ok=True)
    name = args.suite if size == "full" else f"{args.suite}-{size}"
    (args.results_dir / f"{name}.json").write_text(json.dumps(doc, indent=2))
    if args.json:
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        loops = sorted({o.loop for o in outcomes if o.loop})
        print(
            f"wayline benchmarks: suite={args.suite} size={size} repeats={args.repeats} "
            f"seed={args.seed} loop={'/'.join(loops) or '-'} "
            f"python={meta['python']} cpus={meta['cpus']} ({elapsed:.0f}s)"
        )
        print("Medians of the repeats; 'vs baseline' divides by the suite's baseline row")
        print("(same N), measured in this invocation. Each row ran in its own process.\n")
        print(format_table(outcomes))
        if targets:
            print("\nTargets (DESIGN.md section 6):")
            for line in targets:
                print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
