"""Parent-process side: run scenarios in fresh children, take medians, report.

The harness never measures anything itself. It chooses parameters, starts one
child per repeat (``python -m benchmarks._run``), reads the child's single
result line, takes the median of each metric over the repeats, and turns the
medians into ratios against the baseline row of the same suite and group,
measured in the same invocation: absolute times on one machine say little,
ratios to a floor measured next to them say how far from the floor we are.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from ._common import BENCH_HINT
from ._run import RESULT_PREFIX

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Scenario:
    """One row of a suite: a system run on one workload with fixed parameters.

    Attributes:
        suite: the suite name (``throughput``, ``signal``...).
        system: who is measured (``bare``, ``fsync``, ``wayline``, ``dbos``...).
        func: ``module:function`` inside ``benchmarks`` that the child runs.
        params: JSON parameters for the function (the harness adds ``seed``
            and ``workdir``).
        metric: the metrics key the row and its ratio are about.
        unit: how to print ``metric``.
        higher_is_better: True for rates, False for times.
        group: rows with the same group are compared with the same baseline
            (for throughput: the number of concurrent runs).
        baseline: this row is the baseline of its group.
        requires: importable packages; when one is missing the row is skipped
            without starting a child.
        prepare: run the function once with ``phase=prepare`` first, wait for
            it to print READY, SIGKILL it, then measure with ``phase=resume``.
        timeout_s: hard limit per child; a child over it is killed and the row
            reports an error.
        label: the parameters as shown in the table.
        also: secondary metrics shown next to the main one, e.g. p99 next to p50.
    """

    suite: str
    system: str
    func: str
    params: dict[str, Any]
    metric: str
    unit: str
    higher_is_better: bool
    group: str = ""
    baseline: bool = False
    requires: tuple[str, ...] = ()
    prepare: bool = False
    timeout_s: float = 300.0
    label: str = ""
    also: tuple[tuple[str, str], ...] = ()  # (metric, label) shown after the main figure


@dataclass
class Outcome:
    """The medians of one scenario over its repeats, or why there are none."""

    scenario: Scenario
    status: str  # ok | skipped | not ready | error
    reason: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    rss_mb: float | None = None
    note: str | None = None
    loop: str | None = None
    ratio: float | None = None

    @property
    def value(self) -> float | None:
        return self.metrics.get(self.scenario.metric)

    def to_json(self) -> dict[str, Any]:
        s = self.scenario
        return {
            "suite": s.suite,
            "system": s.system,
            "label": s.label,
            "group": s.group,
            "baseline": s.baseline,
            "params": s.params,
            "metric": s.metric,
            "unit": s.unit,
            "higher_is_better": s.higher_is_better,
            "status": self.status,
            "reason": self.reason or None,
            "value": self.value,
            "ratio_to_baseline": self.ratio,
            "metrics": self.metrics,
            "repeats": self.runs,
            "peak_rss_mb": self.rss_mb,
            "note": self.note,
            "loop": self.loop,
        }


class Progress:
    """One line per child on stderr, so a long invocation shows where it is."""

    def __init__(self, total: int, stream: TextIO = sys.stderr) -> None:
        self.total = total
        self.done = 0
        self.stream = stream

    def step(self, text: str) -> None:
        self.done += 1
        self.stream.write(f"[{self.done:>3}/{self.total}] {text}\n")
        self.stream.flush()


def _missing(requires: tuple[str, ...]) -> str | None:
    for package in requires:
        if importlib.util.find_spec(package) is None:
            return package
    return None


def _child_cmd(func: str, params: dict[str, Any]) -> list[str]:
    return [sys.executable, "-m", "benchmarks._run", func, json.dumps(params)]


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    # Children import ``benchmarks`` from the repo root whatever the caller's cwd.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _parse(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            result: dict[str, Any] = json.loads(line[len(RESULT_PREFIX) :])
            return result
    return None


def _tail(text: str, lines: int = 3) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])[:300]


def run_child(func: str, params: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Run one scenario function in a fresh interpreter and return its result dict."""
    # Its own session, so a timeout can kill the child's servers too (Temporal's
    # dev server is a grandchild) and nothing outlives the row.
    proc = subprocess.Popen(
        _child_cmd(func, params),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_child_env(),
        cwd=REPO_ROOT,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        proc.communicate()
        return {"status": "error", "reason": f"timed out after {timeout_s:.0f}s"}
    finally:
        _kill_group(proc)  # leftovers of a child that exited hard
    result = _parse(stdout)
    if result is None:
        why = _tail(stderr) or f"exit code {proc.returncode}"
        return {"status": "error", "reason": f"child died without a result: {why}"}
    if result["status"] == "error" and os.environ.get("WAYLINE_BENCH_DEBUG"):
        sys.stderr.write(stderr)
    return result


def _kill_group(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def prepare_and_kill(func: str, params: dict[str, Any], timeout_s: float) -> dict[str, Any] | None:
    """Run the ``prepare`` phase until it prints READY, then SIGKILL it.

    Returns None on success, or a result dict saying why the preparation failed.
    """
    # stderr goes to a file: only stdout is read until READY, and a chatty child
    # must not block on a full stderr pipe meanwhile.
    with tempfile.TemporaryFile("w+") as errfile:
        proc = subprocess.Popen(
            _child_cmd(func, {**params, "phase": "prepare"}),
            stdout=subprocess.PIPE,
            stderr=errfile,
            text=True,
            env=_child_env(),
            cwd=REPO_ROOT,
            start_new_session=True,
        )
        ready, early_result, timed_out = _wait_ready(proc, timeout_s)
        errfile.seek(0)
        stderr = errfile.read()
    if ready:
        return None
    if early_result is not None and early_result.get("status") != "ok":
        return early_result
    if timed_out:
        return {"status": "error", "reason": f"prepare phase timed out after {timeout_s:.0f}s"}
    why = _tail(stderr) or proc.returncode
    return {"status": "error", "reason": f"prepare phase died: {why}"}


def _wait_ready(proc: subprocess.Popen[str], timeout_s: float) -> tuple[bool, dict[str, Any] | None, bool]:
    """Read the child's stdout until READY (then SIGKILL it), a result, or the deadline."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    ready = False
    early_result: dict[str, Any] | None = None
    # readline blocks, so the deadline is enforced by a timer that kills the child.
    timer = threading.Timer(timeout_s, _kill_group, (proc,))
    timer.start()
    try:
        for line in proc.stdout:
            if line.strip() == "READY":
                ready = True
                break
            if line.startswith(RESULT_PREFIX):
                early_result = json.loads(line[len(RESULT_PREFIX) :])
                break
    finally:
        timer.cancel()
    _kill_group(proc)  # when ready, this SIGKILL is the crash under test: no cleanup at all
    proc.communicate()
    return ready, early_result, not ready and time.monotonic() >= deadline


def run_scenario(scenario: Scenario, repeats: int, seed: int, progress: Progress) -> Outcome:
    """All repeats of one scenario, each in a fresh child and a fresh scratch dir."""
    missing = _missing(scenario.requires)
    if missing is not None:
        for _ in range(repeats):
            progress.step(f"{scenario.suite} {scenario.system} {scenario.label}: skipped")
        return Outcome(scenario, "skipped", f"{missing} not installed ({BENCH_HINT})")
    runs: list[dict[str, Any]] = []
    for r in range(repeats):
        workdir = Path(tempfile.mkdtemp(prefix=f"wlbench-{scenario.suite}-{scenario.system}-"))
        params = {**scenario.params, "seed": seed + r, "workdir": str(workdir)}
        t0 = time.perf_counter()
        try:
            if scenario.prepare:
                failure = prepare_and_kill(scenario.func, params, scenario.timeout_s)
                if failure is not None:
                    result: dict[str, Any] = failure
                else:
                    result = run_child(scenario.func, {**params, "phase": "resume"}, scenario.timeout_s)
            else:
                result = run_child(scenario.func, params, scenario.timeout_s)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        took = time.perf_counter() - t0
        shown = _describe(scenario, result)
        progress.step(
            f"{scenario.suite} {scenario.system} {scenario.label} (repeat {r + 1}/{repeats}): {shown} [{took:.1f}s]"
        )
        if result["status"] != "ok":
            # A row that cannot run once will not run on a second try either.
            for _ in range(r + 1, repeats):
                progress.step(f"{scenario.suite} {scenario.system} {scenario.label}: -")
            return Outcome(scenario, result["status"], str(result.get("reason", "")))
        runs.append(result)
    return _median_outcome(scenario, runs)


def _describe(scenario: Scenario, result: dict[str, Any]) -> str:
    if result["status"] != "ok":
        return f"{result['status']}: {result.get('reason', '')}"
    value = result["metrics"].get(scenario.metric)
    return f"{_fmt(value)} {scenario.unit}" if value is not None else "ok"


def _median_outcome(scenario: Scenario, runs: list[dict[str, Any]]) -> Outcome:
    keys = {k for run in runs for k, v in run["metrics"].items() if isinstance(v, int | float)}
    metrics = {k: statistics.median(run["metrics"][k] for run in runs if k in run["metrics"]) for k in sorted(keys)}
    notes = [run["note"] for run in runs if run.get("note")]
    return Outcome(
        scenario,
        "ok",
        metrics=metrics,
        runs=[{"metrics": run["metrics"], "rss_mb": run["rss_mb"]} for run in runs],
        rss_mb=max(run["rss_mb"] for run in runs),
        note=notes[-1] if notes else None,
        loop=runs[-1].get("loop"),
    )


def attach_ratios(outcomes: list[Outcome]) -> None:
    """Set each row's ratio to the baseline row of its suite and group."""
    baselines = {
        (o.scenario.suite, o.scenario.group): o
        for o in outcomes
        if o.scenario.baseline and o.status == "ok" and o.value
    }
    for o in outcomes:
        base = baselines.get((o.scenario.suite, o.scenario.group))
        if base is not None and o.status == "ok" and o.value is not None and base.value:
            o.ratio = o.value / base.value


def find(outcomes: list[Outcome], suite: str, system: str, group: str = "") -> Outcome | None:
    """The row for ``system`` in ``suite``/``group`` that has a value, if any."""
    for o in outcomes:
        s = o.scenario
        if (s.suite, s.system, s.group) == (suite, system, group) and o.value is not None:
            return o
    return None


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def format_table(outcomes: list[Outcome]) -> str:
    """A plain-text table, one row per scenario, ratio to the suite baseline."""
    header = ("suite", "system", "params", "result", "vs baseline", "peak RSS", "notes")
    rows: list[tuple[str, ...]] = []
    for o in outcomes:
        s = o.scenario
        if o.status == "ok":
            result = f"{_fmt(o.value)} {s.unit}"
            extra = [f"{label} {_fmt(o.metrics[key])}" for key, label in s.also if key in o.metrics]
            if extra:
                result += f" ({', '.join(extra)})"
            if s.baseline:
                ratio = "baseline"
            elif o.ratio is not None:
                ratio = f"{o.ratio:.3g}x"
            else:
                ratio = "-"
            rss = f"{o.rss_mb:.0f} MB" if o.rss_mb is not None else "-"
            notes = o.note or ""
        else:
            # The full reason is in --json; the table stays readable.
            reason = o.reason if len(o.reason) <= 64 else o.reason[:61] + "..."
            result, ratio, rss, notes = f"{o.status}: {reason}", "-", "-", ""
        rows.append((s.suite, s.system, s.label, result, ratio, rss, notes))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for r in [header, *rows]:
        cells = [c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)]
        lines.append(("  ".join(cells) + "  " + r[-1]).rstrip())
    lines.insert(1, "-" * min(140, max(len(line) for line in lines)))
    return "\n".join(lines)


def plot_throughput(outcomes: list[Outcome], path: Path) -> str:
    """Plot steps/s against concurrent runs; returns a message for stderr."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return f"plot skipped: matplotlib not installed ({BENCH_HINT})"
    # (N, steps/s, time-boxed?) per system; a time-boxed point is drawn hollow.
    series: dict[str, list[tuple[int, float, bool]]] = {}
    for o in outcomes:
        if o.scenario.suite == "throughput" and o.value:  # log axes: no zeros
            boxed = "time-boxed" in (o.note or "")
            series.setdefault(o.scenario.system, []).append((int(o.scenario.params["n"]), o.value, boxed))
    if not series:
        return "plot skipped: no throughput figures to plot"
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for system, points in sorted(series.items()):
        points.sort()
        (line,) = ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=system)
        boxed = [p for p in points if p[2]]
        if boxed:
            ax.plot(
                [p[0] for p in boxed],
                [p[1] for p in boxed],
                linestyle="none",
                color=line.get_color(),  # keeps the colour cycle in step
                marker="o",
                markersize=9,
                markerfacecolor="white",
                markeredgecolor=line.get_color(),
            )
    if any(p[2] for points in series.values() for p in points):
        ax.annotate(
            "hollow: time-boxed, partial run",
            xy=(0.99, 0.01),
            xycoords="axes fraction",
            ha="right",
            va="bottom",
            fontsize=8,
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("concurrent runs (N)")
    ax.set_ylabel("checkpointed activities / s")
    ax.set_title("Throughput: N runs x 5 trivial activities, durable checkpoints")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"plot written: {path}"
