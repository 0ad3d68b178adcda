"""The mailbox suite, wayline side: memory per waiting run, and how fast a passivated run
comes back.

Phase ``prepare`` makes the runs real: N ``rt.start`` calls of ``bench_idle`` (several
batches in flight at once, as many clients would start them), each run parking on a
signal whose 30-day timeout is a durable timer too. The preparing runtime passivates a run
0.1 s after it parks, so memory stays bounded while a million are created. Once no run is
left in memory and nothing is queued for the store, it writes what the preparation took
(``prepare.json`` in the scratch directory: seconds, and what the runtime still held for
the runs it had passivated) and prints READY; the harness SIGKILLs it.

Phase ``resume`` is a fresh process, the one measured: it opens the database with every run
loaded (``passivate`` false) or with passivation on (waiting runs stay in the store until a
message or their timer arrives), reports the growth of its resident memory per run, then
signals a random sample of the runs and times each signal to the run's result.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import itertools
import json
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ._common import Metrics, Params, db_file, percentile, settle
from ._wayline import _close, _require_signals, _setup

# The preparing runtime passivates runs this soon after they park: the fewer live at once,
# the less memory and GC work while a million are created.
_PREPARE_PASSIVATE_S = 0.1
# Batches of starts in flight at once, and runs per batch: enough to keep the group commit
# full (one fsync per few thousand creates) without a burst of live runs.
_STARTERS = 2
_BATCH = 1000


def _rss_bytes() -> int:
    """Resident memory now (not the peak): what the waiting runs themselves occupy."""
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _trimmed_rss_bytes() -> int:
    """Resident memory once the C allocator has handed its free pages back: what is still
    in use, not what a burst of live runs left cached in malloc's free lists."""
    with contextlib.suppress(OSError, AttributeError):  # glibc only
        ctypes.CDLL(None).malloc_trim(0)
    return _rss_bytes()


def _tracked_objects() -> int:
    gc.collect()
    return len(gc.get_objects())


def _bulk_load_gc() -> tuple[int, ...]:
    """Fewer collections while a million runs are created (a third faster here): a bulk
    load's setting, undone before anything is counted; the measured process keeps the
    defaults. Returns the thresholds to restore."""
    thresholds = gc.get_threshold()
    gc.freeze()  # what is alive now (modules, workflows) is never garbage: stop re-scanning it
    gc.set_threshold(50_000, 50, 100)
    return thresholds


def _report_path(params: Params) -> Path:
    return db_file(params, "prepare.json")


async def waiting_memory(params: Params) -> Metrics:
    """Memory per waiting run, and signal -> result time for a sample of them."""
    _require_signals()
    if params["phase"] == "prepare":
        await _prepare(params)
        return {}
    return await _measure(params)


async def _prepare(params: Params) -> None:
    n = int(params["n"])
    wl, wfs = _setup()
    thresholds = _bulk_load_gc()
    t0 = time.perf_counter()
    async with contextlib.AsyncExitStack() as stack:
        rt = await stack.enter_async_context(
            wl.open_runtime(str(db_file(params, "wayline.db")), workflows=wfs.all, passivate_after=_PREPARE_PASSIVATE_S)
        )
        peak_live = 0

        async def starter(ids: Iterator[int]) -> None:
            nonlocal peak_live
            while batch := list(itertools.islice(ids, _BATCH)):
                await asyncio.gather(*(rt.start(wfs.idle, i, run_id=f"w{i}") for i in batch))
                peak_live = max(peak_live, rt.statistics().live_runs)

        # Two halves, each until every run has passivated: what the second half adds to the
        # process is what a passivated run keeps costing a long-lived runtime.
        half = n // 2
        held = []
        for ids in (iter(range(half)), iter(range(half, n))):
            await asyncio.gather(*(starter(ids) for _ in range(_STARTERS)))
            await _until_all_passivated(rt)
            held.append((_tracked_objects(), _trimmed_rss_bytes()))
        if await rt.list_runs(status="RUNNING", limit=1):
            raise RuntimeError("a run is still RUNNING in the store after every run passivated")
        took = time.perf_counter() - t0
        stats = rt.statistics()
        report = {
            "n": n,
            "prepare_s": took,
            "peak_live": peak_live,
            "objects_per_run": (held[1][0] - held[0][0]) / (n - half),
            "rss_per_run": (held[1][1] - held[0][1]) / (n - half),
            # What the runtime holds in memory, which must be nothing once no run is there.
            "tables": {"live": stats.live_runs, "mailboxes": stats.mailbox_depth},
        }
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        _report_path(params).write_text(json.dumps(report))
        print("READY", flush=True)
        await asyncio.sleep(3600)  # SIGKILLed here by the harness


async def _until_all_passivated(rt: Any, timeout_s: float = 1200.0) -> None:
    """Wait until no run is in memory and the store has nothing queued: every run has parked,
    its wait is committed (a run passivates only then), and it has left memory."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout_s
    while rt.statistics().live_runs or rt.store.pending:
        if loop.time() > give_up:
            raise TimeoutError(f"{rt.statistics().live_runs} runs still in memory after {timeout_s:.0f}s")
        await asyncio.sleep(0.05)


async def _until_all_loaded(rt: Any, n: int, timeout_s: float = 1200.0) -> None:
    """Wait until all N recovered runs are in memory and parked on their signal again."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout_s
    while rt.statistics().waiting_runs < n or rt.store.pending:
        if loop.time() > give_up:
            parked = rt.statistics().waiting_runs
            raise TimeoutError(f"only {parked} of {n} runs loaded and parked after {timeout_s:.0f}s")
        await asyncio.sleep(0.1)


async def _measure(params: Params) -> Metrics:
    n, samples, passivate = int(params["n"]), int(params["samples"]), bool(params["passivate"])
    prep = json.loads(_report_path(params).read_text())
    wl, wfs = _setup()
    gc.collect()
    before = _rss_bytes()
    t0 = time.perf_counter()
    async with contextlib.AsyncExitStack() as stack:
        rt = await stack.enter_async_context(
            wl.open_runtime(
                str(db_file(params, "wayline.db")), workflows=wfs.all, passivate_after=60.0 if passivate else None
            )
        )
        if not passivate:
            await _until_all_loaded(rt, n)
        await settle()
        opened = time.perf_counter() - t0
        gc.collect()
        per_run = (_rss_bytes() - before) / n
        live = rt.statistics().live_runs
        times = []
        for i in random.Random(params["seed"]).sample(range(n), samples):
            t1 = time.perf_counter()
            await rt.signal(f"w{i}", "go", i)
            if await rt.get_handle(f"w{i}").result() != i:
                raise RuntimeError(f"run w{i} returned the wrong signal payload")
            times.append(time.perf_counter() - t1)
        await _close(stack)
    ms = [t * 1000 for t in times]
    tables = ", ".join(f"{k} {v}" for k, v in prep["tables"].items() if v) or "all empty"
    state = "passivated, left in the store" if passivate else "all loaded and parked"
    return {
        "bytes_per_run": per_run,
        "reload_ms": percentile(ms, 50),
        "reload_p99_ms": percentile(ms, 99),
        "open_s": opened,
        "in_memory": live,
        "prepare_s": prep["prepare_s"],
        "prepare_runs_per_s": n / prep["prepare_s"],
        "kept_bytes_per_passivated_run": prep["rss_per_run"],
        "kept_objects_per_passivated_run": prep["objects_per_run"],
        "note": (
            f"RSS growth of a fresh process from open_runtime until its {n:,} waiting runs are ready "
            f"({state}: {live:,} in memory, {opened:.1f}s); signal->result over {samples} random runs. "
            f"Prepared by {n:,} rt.start -> park -> passivate in {prep['prepare_s']:.0f}s "
            f"({n / prep['prepare_s']:,.0f} runs/s, at most {prep['peak_live']:,} in memory); "
            f"in that long-lived runtime each passivated run kept {prep['rss_per_run']:+.0f} B RSS and "
            f"{prep['objects_per_run']:+.4f} objects (2nd half vs 1st), its tables: {tables}"
        ),
    }
