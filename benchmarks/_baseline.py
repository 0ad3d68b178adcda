"""The bare baseline: the ceiling wayline is measured against.

No actors, no history, no supervision: an asyncio task per run calls trivial
async activities, and after each one encodes a msgspec msgpack snapshot and
hands it to ONE group-committing SQLite writer (aiosqlite, WAL,
``synchronous=FULL``). The writer takes everything queued, writes it in one
transaction (an executemany upsert of ``(run_id, snapshot)``), commits, and
resolves each waiter's future; a run continues only after its own commit. This
is the least work any durable runtime on SQLite must do per step, so
wayline/baseline is the fraction of the ceiling wayline reaches.

Also here: the per-fsync floor (a loop of single-row INSERT+COMMIT) that the
``sequential`` suite divides by.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from pathlib import Path

import aiosqlite
import msgspec

from ._common import Deadline, Metrics, Params, db_file, latency_metrics, settle


class Snapshot(msgspec.Struct, array_like=True):
    """What a checkpoint stores: enough to resume a run of trivial steps."""

    run_id: str
    status: str
    input: int
    results: list[int]
    inbox: list[str] = []


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(Snapshot)

_UPSERT = (
    "INSERT INTO runs(run_id, snapshot) VALUES (?, ?) ON CONFLICT(run_id) DO UPDATE SET snapshot = excluded.snapshot"
)


async def _open(path: Path) -> aiosqlite.Connection:
    db = await aiosqlite.connect(path)
    await db.execute("PRAGMA journal_mode=WAL")
    await db.execute("PRAGMA synchronous=FULL")
    await db.execute("CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, snapshot BLOB)")
    await db.commit()
    return db


class GroupCommitter:
    """One writer task; every waiter queued while a commit runs joins the next one."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        self._pending: list[tuple[str, bytes, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.commits = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def write(self, run_id: str, snapshot: bytes) -> None:
        """Queue one snapshot and return once it is committed."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((run_id, snapshot, fut))
        self._wake.set()
        await fut

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            if not batch:
                continue
            try:
                await self._db.executemany(_UPSERT, [(r, s) for r, s, _ in batch])
                await self._db.commit()
            except Exception as exc:  # fail the waiters rather than hang them
                for _, _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            self.commits += 1
            for _, _, fut in batch:
                if not fut.done():
                    fut.set_result(None)


async def _activity(i: int) -> int:
    """A trivial async activity: the step costs only what the runtime adds."""
    return i


async def _steps(gc: GroupCommitter, run_id: str, n: int, k: int) -> int:
    results: list[int] = []
    for i in range(k):
        results.append(await _activity(i))
        status = "done" if i == k - 1 else "running"
        await gc.write(run_id, _ENCODER.encode(Snapshot(run_id, status, n, results)))
    return n


async def throughput(params: Params) -> Metrics:
    """N concurrent runs of K trivial activities, one checkpoint after each."""
    n, k = int(params["n"]), int(params["k"])
    db = await _open(db_file(params, "bare.db"))
    gc = GroupCommitter(db)
    gc.start()
    timer = Deadline()
    await asyncio.gather(*(_steps(gc, f"r{i}", i, k) for i in range(n)))
    elapsed = timer.elapsed
    cpu = timer.cpu_us_per(n * k)
    await gc.stop()
    await db.close()
    return {
        "steps_per_s": n * k / elapsed,
        "cpu_us_per_step": cpu,
        "seconds": elapsed,
        "steps": n * k,
        "commits": gc.commits,
    }


async def sequential(params: Params) -> Metrics:
    """One run of S sequential steps through the group committer."""
    steps = int(params["steps"])
    db = await _open(db_file(params, "bare.db"))
    gc = GroupCommitter(db)
    gc.start()
    t0 = time.perf_counter()
    await _steps(gc, "seq", 0, steps)
    elapsed = time.perf_counter() - t0
    await gc.stop()
    await db.close()
    return {"us_per_step": elapsed / steps * 1e6, "seconds": elapsed, "steps": steps}


def _fsync_loop(path: Path, rows: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
    payload = b"x" * 64
    t0 = time.perf_counter()
    for i in range(rows):
        conn.execute("BEGIN")
        conn.execute("INSERT INTO t(id, v) VALUES (?, ?)", (i, payload))
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    conn.close()
    return elapsed


async def fsync(params: Params) -> Metrics:
    """The floor for one durable step: one committed single-row transaction."""
    rows = int(params["steps"])
    # Plain sqlite3, off the event loop: this measures the disk, not a driver.
    elapsed = await asyncio.to_thread(_fsync_loop, db_file(params, "fsync.db"), rows)
    return {"us_per_step": elapsed / rows * 1e6, "seconds": elapsed, "steps": rows}


async def latency(params: Params) -> Metrics:
    """Start-to-finish time of one 3-step run: a start commit then 3 checkpoints."""
    samples = int(params["samples"])
    db = await _open(db_file(params, "bare.db"))
    gc = GroupCommitter(db)
    gc.start()
    times: list[float] = []
    for i in range(samples):
        run_id = f"lat{i}"
        t0 = time.perf_counter()
        await gc.write(run_id, _ENCODER.encode(Snapshot(run_id, "running", i, [])))
        await _steps(gc, run_id, i, 3)
        times.append(time.perf_counter() - t0)
    await gc.stop()
    await db.close()
    return latency_metrics(times)


async def signal(params: Params) -> Metrics:
    """Durable signal round trip: commit to an inbox, wake the run, run checkpoints it."""
    samples = int(params["samples"])
    db = await _open(db_file(params, "bare.db"))
    gc = GroupCommitter(db)
    gc.start()
    loop = asyncio.get_running_loop()
    times: list[float] = []

    async def waiting_run(run_id: str, inbox: asyncio.Future[str]) -> None:
        payload = await inbox
        await gc.write(run_id, _ENCODER.encode(Snapshot(run_id, "done", 0, [], [payload])))

    for i in range(samples):
        run_id = f"sig{i}"
        inbox: asyncio.Future[str] = loop.create_future()
        await gc.write(run_id, _ENCODER.encode(Snapshot(run_id, "waiting", 0, [])))
        task = loop.create_task(waiting_run(run_id, inbox))
        await asyncio.sleep(0)  # let the run reach its wait
        t0 = time.perf_counter()
        await gc.write(f"inbox:{run_id}", b"go")  # accepted = durable first
        inbox.set_result("go")
        await task
        times.append(time.perf_counter() - t0)
    await gc.stop()
    await db.close()
    return latency_metrics(times)


async def recovery(params: Params) -> Metrics:
    """Park N runs after step 1 (phase ``prepare``), or resume them after a SIGKILL."""
    n = int(params["n"])
    t0 = time.perf_counter()  # for the resume phase, opening the database counts too
    db = await _open(db_file(params, "bare.db"))
    gc = GroupCommitter(db)
    gc.start()
    if params["phase"] == "prepare":
        await asyncio.gather(*(_park(gc, f"r{i}", i) for i in range(n)))
        print("READY", flush=True)
        await asyncio.sleep(3600)  # the harness kills us with SIGKILL here
        return {}

    loop = asyncio.get_running_loop()
    async with db.execute("SELECT run_id, snapshot FROM runs") as cur:
        rows = await cur.fetchall()
    inboxes: dict[str, asyncio.Future[str]] = {}
    tasks = []
    for run_id, blob in rows:
        snap = _DECODER.decode(blob)
        if snap.status != "waiting":
            continue
        inboxes[run_id] = loop.create_future()
        tasks.append(loop.create_task(_resume(gc, snap, inboxes[run_id])))
    live = await settle() - t0  # every resumed run is parked on its inbox

    async def deliver(run_id: str) -> None:
        await gc.write(f"inbox:{run_id}", b"go")
        inboxes[run_id].set_result("go")

    await asyncio.gather(*(deliver(r) for r in inboxes))
    results = await asyncio.gather(*tasks)
    done = time.perf_counter() - t0
    await gc.stop()
    await db.close()
    if len(results) != n:
        raise RuntimeError(f"resumed {len(results)} runs, expected {n}")
    return {"resume_s": live, "complete_s": done, "runs": len(results)}


async def _park(gc: GroupCommitter, run_id: str, n: int) -> None:
    first = await _activity(0)
    await gc.write(run_id, _ENCODER.encode(Snapshot(run_id, "waiting", n, [first])))


async def _resume(gc: GroupCommitter, snap: Snapshot, inbox: asyncio.Future[str]) -> int:
    payload = await inbox
    results = [*snap.results, await _activity(1)]
    done = Snapshot(snap.run_id, "done", snap.input, results, [payload])
    await gc.write(snap.run_id, _ENCODER.encode(done))
    return snap.input


async def waiting_memory(params: Params) -> Metrics:
    """The floor for a live waiting run: one asyncio task per run blocked on a future."""
    import gc
    import os

    def rss() -> int:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    n = int(params["n"])
    if params.get("phase") == "prepare":
        print("READY", flush=True)
        await asyncio.sleep(3600)
        return {}
    gc.collect()
    before = rss()
    loop = asyncio.get_running_loop()
    futures = [loop.create_future() for _ in range(n)]

    async def waiter(fut: asyncio.Future[int]) -> int:
        return await fut

    tasks = [asyncio.ensure_future(waiter(f)) for f in futures]
    await asyncio.sleep(0.1)
    gc.collect()
    per_run = (rss() - before) / n
    times = []
    for i in random.Random(params["seed"]).sample(range(n), int(params.get("samples", 100))):
        t0 = time.perf_counter()
        futures[i].set_result(1)
        await tasks[i]
        times.append(time.perf_counter() - t0)
    for fut in futures:
        if not fut.done():
            fut.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    wake = latency_metrics(times)
    return {"bytes_per_run": per_run, "reload_ms": wake["p50_ms"], "reload_p99_ms": wake["p99_ms"]}
