"""Several worker processes on one PostgreSQL database (the ``scale`` suite).

``throughput``: ``workers`` worker processes (``open_runtime(url, worker=True)``) and a client
(``worker=False``, this process) on a fresh database. The client starts ``n`` runs of the
throughput workload (``k`` trivial activities, `_wayline`'s ``bench_steps``) and the workers run
them. steps/s = n x k / the wall time from the first start to the moment the store counts the
last run ended (polled every 10 ms). CPU per step is the workers' own (their processes' user +
system time over the same span; the client's and the server's are not in it).

``failover``: two workers with a short lease (``lease``) and ``n`` runs of ``steps`` steps,
each step an activity that notes its process and the time it started, then sleeps ``pause``
seconds. Once every run is owned and under way, the worker owning the most runs is killed
with SIGKILL. Each run returns the notes of its steps (the execution that counted: a step
that ran on the dead worker without its checkpoint runs again, and its note is the survivor's).
A run of the dead worker's resumes when the survivor starts its first step after the kill;
``failover_s`` is the time from the kill to the last of them, to be read against lease + 1 s.

Each worker is ``python -m benchmarks._scale <url> <lease> <workload>``: it prints
``READY <worker id>`` once open, a ``STATS <json>`` line (CPU seconds, activities run) on
SIGUSR1, and closes on SIGTERM.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import json
import os
import resource
import signal
import statistics
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

from . import _wayline
from ._common import Metrics, NotReady, Params, cpu_seconds

#: How often the client asks the store how many runs have ended.
POLL_S = 0.01
#: The longest a worker may take to open (the interpreter, its imports, the first connection).
OPEN_TIMEOUT_S = 60.0


def _require_workers() -> Any:
    """The wayline module, or NotReady while ``open_runtime`` has no worker processes."""
    wl, _ = _wayline._setup()
    if "worker" not in inspect.signature(wl.open_runtime).parameters:
        raise NotReady("wayline has no worker processes yet (open_runtime(worker=...))")
    return wl


# --- the failover workload ------------------------------------------------------------------

_failover_wfs: list[Any] | None = None


def _failover_workflows() -> list[Any]:
    """The failover workflow, defined once per process (workers and the client alike)."""
    global _failover_wfs
    if _failover_wfs is None:
        wl = _require_workers()

        @wl.activity(name="scale_stamp")
        async def stamp(pause: float) -> list[float]:
            started = time.time()  # before the pause: when this execution began
            await asyncio.sleep(pause)
            return [float(os.getpid()), started]

        @wl.workflow(name="scale_failover")
        async def failover_run(ctx: Any, spec: list[float]) -> list[list[float]]:
            steps, pause = int(spec[0]), spec[1]
            return [await ctx.run(stamp, pause) for _ in range(steps)]

        _failover_wfs = [failover_run]
    return _failover_wfs


def _workflows(workload: str) -> list[Any]:
    _, wfs = _wayline._setup()
    return _failover_workflows() if workload == "failover" else wfs.all


# --- the worker process ---------------------------------------------------------------------


def _stats() -> dict[str, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"cpu_s": usage.ru_utime + usage.ru_stime, "executed": float(_wayline._executed)}


async def _serve(url: str, lease: float, workload: str) -> None:
    wl = _require_workers()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, lambda: print("STATS " + json.dumps(_stats()), flush=True))
    async with wl.open_runtime(url, workflows=_workflows(workload), worker=True, lease_seconds=lease) as rt:
        print(f"READY {rt.worker_id}", flush=True)
        await stop.wait()


def worker_main(argv: list[str]) -> int:
    from ._run import _run_coroutine  # the same loop as every scenario (uvloop if installed)

    url, lease, workload = argv[1], float(argv[2]), argv[3]
    _run_coroutine(lambda: _serve(url, lease, workload))
    return 0


# --- the client side ------------------------------------------------------------------------


class _Worker:
    """One worker process, as the client sees it: its lines on stdout, the last of stderr."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.worker_id = ""
        self.lines: asyncio.Queue[str] = asyncio.Queue()
        self.errors: collections.deque[str] = collections.deque(maxlen=3)
        self.readers = [asyncio.ensure_future(self._read()), asyncio.ensure_future(self._drain())]

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            await self.lines.put(raw.decode(errors="replace").rstrip("\n"))
        await self.lines.put("")  # the process closed its stdout: it ended

    async def _drain(self) -> None:
        # Read all along: a worker must never block on a full stderr pipe (the victim's
        # survivor logs each run it takes over).
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            self.errors.append(raw.decode(errors="replace").rstrip("\n"))

    async def expect(self, prefix: str, seconds: float) -> str:
        """The rest of the next line that starts with ``prefix``, within ``seconds``."""
        async with asyncio.timeout(seconds):
            while True:
                line = await self.lines.get()
                if line.startswith(prefix):
                    return line[len(prefix) :]
                if line == "" and self.proc.stdout is not None and self.proc.stdout.at_eof():
                    raise RuntimeError(f"worker {self.proc.pid} ended before {prefix.strip()}: {self.stderr_tail()}")

    async def stats(self) -> dict[str, float]:
        self.proc.send_signal(signal.SIGUSR1)
        stats: dict[str, float] = json.loads(await self.expect("STATS ", 30.0))
        return stats

    def stderr_tail(self) -> str:
        return " | ".join(self.errors)[:300] or f"exit code {self.proc.returncode}"


@contextlib.asynccontextmanager
async def _workers(count: int, url: str, lease: float, workload: str) -> AsyncIterator[list[_Worker]]:
    """``count`` worker processes on ``url``, each open; stopped (SIGTERM, then SIGKILL) on exit."""
    started: list[_Worker] = []
    try:
        for _ in range(count):
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "benchmarks._scale",
                url,
                str(lease),
                workload,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            started.append(_Worker(proc))
        for w in started:
            w.worker_id = await w.expect("READY ", OPEN_TIMEOUT_S)
        yield started
    finally:
        for w in started:
            with contextlib.suppress(ProcessLookupError):  # the failover's victim is gone already
                w.proc.terminate()
        for w in started:
            try:
                async with asyncio.timeout(15.0):
                    await w.proc.wait()
            except TimeoutError:
                w.proc.kill()
                await w.proc.wait()
            for reader in w.readers:
                reader.cancel()


async def _until_ended(rt: Any, n: int, timeout_s: float) -> float:
    """The time (perf_counter) at which the store first counts ``n`` ended runs."""
    from wayline import RunStatus

    ended = [s for s in RunStatus if s.finished]
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout_s
    while (done := await rt.store.count_runs(ended)) < n:
        if loop.time() > give_up:
            raise TimeoutError(f"{done} of {n} runs ended after {timeout_s:.0f}s")
        await asyncio.sleep(POLL_S)
    return time.perf_counter()


class _ServerCpu:
    """CPU time of the PostgreSQL backends serving one database, from /proc: only where the
    server runs on this machine (else ``seconds`` is None). Its background processes (WAL
    writer, checkpointer) serve every database and are left out."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._tick = os.sysconf("SC_CLK_TCK")

    async def seconds(self) -> dict[int, float] | None:
        pids = [r[0] for r in await self._conn.fetch(_BACKENDS)]
        found = {pid: t for pid in pids if (t := _proc_cpu(pid, self._tick)) is not None}
        return found or None


def _proc_cpu(pid: int, tick: int) -> float | None:
    """User + system CPU seconds of process ``pid`` (None: not on this machine, or gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / tick  # utime, stime


_BACKENDS = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"


def _spent(before: dict[int, float] | None, after: dict[int, float] | None) -> float | None:
    """CPU seconds the backends alive at both readings spent in between."""
    if not before or not after:
        return None
    return sum(after[pid] - before[pid] for pid in after.keys() & before.keys())


async def throughput(params: Params) -> Metrics:
    """``workers`` worker processes run ``n`` runs of ``k`` steps that a client started."""
    import random

    import asyncpg

    from ._pg import fresh_database

    wl = _require_workers()
    _, wfs = _wayline._setup()
    count, n, k = int(params["workers"]), int(params["n"]), int(params["k"])
    rng = random.Random(params["seed"])
    inputs = [rng.randrange(1 << 30) for _ in range(n)]
    async with contextlib.AsyncExitStack() as stack:
        url = await stack.enter_async_context(fresh_database())
        # The client opens first: it migrates the fresh database before any worker opens it.
        rt = await stack.enter_async_context(wl.open_runtime(url, workflows=wfs.all, worker=False))
        workers = await stack.enter_async_context(_workers(count, url, 10.0, "steps"))
        conn = await asyncpg.connect(url, timeout=10)
        stack.push_async_callback(conn.close)
        server = _ServerCpu(conn)
        before = [await w.stats() for w in workers]
        server_before, client_before = await server.seconds(), cpu_seconds()
        t0 = time.perf_counter()
        handles = await asyncio.gather(*(rt.start(wfs.steps, [inputs[i], k], run_id=f"r{i}") for i in range(n)))
        started = time.perf_counter() - t0
        ended = await _until_ended(rt, n, float(params.get("wait_s", 300.0)))
        client_cpu = cpu_seconds() - client_before
        after = [await w.stats() for w in workers]
        server_cpu = _spent(server_before, await server.seconds())
        results = [await h.result() for h in handles]  # not timed: every run must have its own result
        if results != inputs:
            raise RuntimeError("runs returned wrong results")
    elapsed = ended - t0
    steps = n * k
    executed = [int(a["executed"] - b["executed"]) for a, b in zip(after, before, strict=True)]
    cpu = sum(a["cpu_s"] - b["cpu_s"] for a, b in zip(after, before, strict=True))
    cores = os.cpu_count() or 0
    metrics: Metrics = {
        "steps_per_s": steps / elapsed,
        "cpu_us_per_step": cpu / steps * 1e6,
        "client_cpu_us_per_step": client_cpu / steps * 1e6,
        "seconds": elapsed,
        "steps": steps,
    }
    busy = cpu + client_cpu
    if server_cpu is not None:
        metrics["server_cpu_us_per_step"] = server_cpu / steps * 1e6
        busy += server_cpu
    metrics["cores_busy"] = busy / elapsed  # of os.cpu_count(), others' work on the machine aside
    metrics["note"] = (
        f"{count} worker process(es), a client starting {n} runs ({started:.2f}s to start them all); "
        f"steps per worker {'/'.join(map(str, executed))}; workers + client"
        f"{' + server backends' if server_cpu is not None else ''} kept {busy / elapsed:.2f} of {cores} cores busy"
    )
    return metrics


def _resumes(
    results: dict[str, list[list[float]]], victims: set[str], killed_at: float
) -> tuple[list[float], list[float]]:
    """For each of the ``victims`` (the runs the killed worker owned, unfinished, at the kill)
    that went on: the delay from the kill to its first step begun after it (on the survivor,
    the victim being dead). Second: the same delay for every run with a step begun after the
    kill (the survivor's own runs too)."""
    moved: list[float] = []
    after_kill: list[float] = []
    for run_id, stamps in results.items():
        later = [t for _, t in stamps if t >= killed_at]
        if not later:
            continue  # this run's steps had all begun before the kill
        after_kill.append(min(later) - killed_at)
        if run_id in victims:
            moved.append(min(later) - killed_at)
    return moved, after_kill


_UNFINISHED = "SELECT run_id, owner FROM wayline.runs WHERE NOT (status = ANY($1::text[]))"


async def _owned(conn: Any) -> dict[str, list[str]]:
    """The unfinished runs each worker owns now, read from the store's table (no API lists a
    run's owner); and under ``""`` the unfinished runs nobody owns."""
    from wayline import RunStatus

    rows = await conn.fetch(_UNFINISHED, [s.value for s in RunStatus if s.finished])
    owned: dict[str, list[str]] = {}
    for run_id, owner in rows:
        owned.setdefault(owner or "", []).append(run_id)
    return owned


async def failover(params: Params) -> Metrics:
    """Two workers with a lease of ``lease`` seconds share ``n`` runs; the one holding the most
    is SIGKILLed mid-way: seconds from the kill to the last of its runs resuming on the other."""
    import asyncpg

    from ._pg import fresh_database

    wl = _require_workers()
    [wf] = _failover_workflows()
    n, steps, pause, lease = int(params["n"]), int(params["steps"]), float(params["pause"]), float(params["lease"])
    async with contextlib.AsyncExitStack() as stack:
        url = await stack.enter_async_context(fresh_database())
        rt = await stack.enter_async_context(wl.open_runtime(url, workflows=[wf], worker=False))
        workers = await stack.enter_async_context(_workers(2, url, lease, "failover"))
        conn = await asyncpg.connect(url, timeout=10)
        stack.push_async_callback(conn.close)
        by_id = {w.worker_id: w for w in workers}
        handles = await asyncio.gather(*(rt.start(wf, [steps, pause], run_id=f"f{i}") for i in range(n)))
        await _until_owned(conn, n, 120.0)
        await asyncio.sleep(2 * pause)  # every run a step or two in: mid-way
        owned = await _owned(conn)
        victim_id = max(by_id, key=lambda wid: len(owned.get(wid, [])))
        victims = set(owned.get(victim_id, []))
        victim = by_id[victim_id]
        killed_at = time.time()
        victim.proc.kill()
        results = dict(
            zip((h.run_id for h in handles), await asyncio.gather(*(h.result() for h in handles)), strict=True)
        )
    if any(len(r) != steps for r in results.values()):
        raise RuntimeError("a run ended without all its steps")
    moved, after_kill = _resumes(results, victims, killed_at)
    if not moved:
        raise RuntimeError(f"none of the killed worker's {len(victims)} unfinished runs went on")
    worst = max(moved)
    return {
        "failover_s": worst,
        "p50_s": statistics.median(moved),
        "moved": len(moved),
        "lease_s": lease,
        "all_resumed_s": max(after_kill),
        "note": (
            f"lease {lease:g}s; the killed worker held {len(victims)} of the {n} runs unfinished, "
            f"{len(moved)} of them went on on the other; the last resumed {worst:.2f}s after the kill "
            f"({'within' if worst <= lease + 1 else 'NOT within'} lease + 1s = {lease + 1:g}s)"
        ),
    }


async def _until_owned(conn: Any, n: int, timeout_s: float) -> None:
    """Wait until every unfinished run is owned (the ``n`` runs started are all claimed)."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout_s
    while True:
        owned = await _owned(conn)
        if not owned.get("") and owned:
            return
        if loop.time() > give_up:
            raise TimeoutError(f"{len(owned.get('', []))} of {n} runs still unowned after {timeout_s:.0f}s")
        await asyncio.sleep(POLL_S)


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv))
