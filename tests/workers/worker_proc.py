"""A real worker (or client) process for the tests in this directory.

    python worker_proc.py worker STORE RECORD WORKER_ID LEASE_SECONDS [--loop uvloop] [--max-runs N]
        [--workflows NAME,NAME] [--passivate-after SECONDS]
    python worker_proc.py client STORE RECORD WORKFLOW RUN_ID INPUT_JSON [--then exit|kill|stay]

``worker`` opens ``open_runtime(STORE, worker=True, worker_id=WORKER_ID, lease_seconds=...)``,
registering the workflows named by ``--workflows`` (all of them by default), prints
``ready <worker id>`` (its registered id on PostgreSQL) and stays up until SIGTERM (then
prints ``stopped``) or until it is killed. Its log (the runtime's "dropped" lines among others)
goes to stderr.

``client`` opens ``open_runtime(STORE, worker=False)``, starts one run, prints ``started`` and
then exits at once (``exit``), kills itself with SIGKILL right after ``rt.start`` returned
(``kill``), or stays up until SIGTERM (``stay``). A client never executes a step: if it did,
its rows in RECORD would say so (worker id ``client``).

Every execution of a step (activity) is recorded durably, once it ends, as a row
``(run_id, step, worker_id, started, ended)`` of the ``executions`` table in RECORD: a
PostgreSQL URL (the test's own database) or a SQLite file, written in autocommit. Times are
``time.time()`` of this host, which the test and every worker share.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sqlite3
import sys
import time
from typing import Any

from wayline import Concurrency, Event, RunContext, activity, on_event, open_runtime, workflow

EXECUTIONS_DDL = (
    "CREATE TABLE executions (run_id text NOT NULL, step integer NOT NULL, "
    "worker_id text NOT NULL, started double precision NOT NULL, ended double precision NOT NULL)"
)
INSERT = "INSERT INTO executions (run_id, step, worker_id, started, ended) VALUES ({})"
MODULUS = 1_000_003


class Recorder:
    """Writes one row per finished step execution, durably before the step returns."""

    def __init__(self, where: str, worker_id: str) -> None:
        self.where = where
        self.worker_id = worker_id
        self._pool: Any = None
        self._sqlite: sqlite3.Connection | None = None

    async def open(self) -> None:
        if self.where.startswith(("postgresql://", "postgres://")):
            import asyncpg

            # Not named "wayline ...": the reconnect test ends the runtime's sessions by that name.
            self._pool = await asyncpg.create_pool(
                self.where, min_size=1, max_size=4, server_settings={"application_name": "test recorder"}
            )
        else:
            self._sqlite = sqlite3.connect(self.where, timeout=30, isolation_level=None)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
        if self._sqlite is not None:
            self._sqlite.close()

    async def write(self, run_id: str, step: int, started: float, ended: float) -> None:
        row = (run_id, step, self.worker_id, started, ended)
        if self._pool is not None:
            await self._pool.execute(INSERT.format("$1, $2, $3, $4, $5"), *row)
        else:
            assert self._sqlite is not None
            self._sqlite.execute(INSERT.format("?, ?, ?, ?, ?"), row)


RECORDER: Recorder | None = None


def next_value(acc: int, step: int) -> int:
    """What step ``step`` makes of ``acc``: the test computes the uninterrupted result with it."""
    return (acc * 31 + step + 1) % MODULUS


def chain_result(seed: int, steps: int) -> int:
    return chain_steps(seed, steps)[-1] if steps else seed


def chain_steps(seed: int, steps: int) -> list[int]:
    """The result of each of a chain's steps, in order."""
    out, acc = [], seed
    for i in range(steps):
        acc = next_value(acc, i)
        out.append(acc)
    return out


@activity(name="recorded_step")
async def recorded_step(run_id: str, step: int, acc: int, ms: float) -> int:
    started = time.time()
    await asyncio.sleep(ms / 1000)
    assert RECORDER is not None, "opened before the runtime"
    await RECORDER.write(run_id, step, started, time.time())
    return next_value(acc, step)


@workflow(name="chain")
async def chain(ctx: RunContext, spec: list[int]) -> int:
    """``[seed, steps, ms]``: ``steps`` recorded steps of ``ms`` milliseconds, one after another."""
    seed, steps, ms = spec
    acc = seed
    for i in range(steps):
        acc = await ctx.run(recorded_step, ctx.run_id, i, acc, float(ms))
    return acc


@workflow(name="waiter")
async def waiter(ctx: RunContext, seed: int) -> list[Any]:
    """Step 0, then waits for the signal "go", then step 1: ``[payload, value after step 1]``."""
    before = await ctx.run(recorded_step, ctx.run_id, 0, seed, 1.0)
    payload = await ctx.wait_signal("go")
    after = await ctx.run(recorded_step, ctx.run_id, 1, before, 1.0)
    return [payload, after]


def waiter_result(seed: int, payload: Any) -> list[Any]:
    return [payload, chain_result(seed, 2)]


#: Runs of `limited` executing at once per key, across every worker (test_flow.py checks it).
LIMIT = 2


@workflow(
    name="limited",
    triggers=[on_event("job")],
    concurrency=Concurrency(LIMIT, key=lambda event: event.data["key"]),
)
async def limited(ctx: RunContext, event: Event) -> int:
    """Started by a ``job`` event ``{"key": k, "n": n, "ms": ms}``: one recorded step of ``ms``
    milliseconds, recorded as step ``k`` (its key: the test checks the overlaps per key)."""
    data = event.data
    return await ctx.run(recorded_step, ctx.run_id, int(data["key"]), int(data["n"]), float(data["ms"]))


WORKFLOWS = [chain, waiter, limited]
BY_NAME = {"chain": chain, "waiter": waiter, "limited": limited}


async def serve(args: argparse.Namespace) -> None:
    global RECORDER
    RECORDER = Recorder(args.record, args.worker_id)
    await RECORDER.open()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        async with open_runtime(
            args.store,
            workflows=[BY_NAME[name] for name in args.workflows.split(",")] if args.workflows else WORKFLOWS,
            worker=True,
            worker_id=args.worker_id,
            lease_seconds=args.lease_seconds,
            max_runs=args.max_runs,
            passivate_after=args.passivate_after,
        ) as rt:
            # The one worker of a SQLite database has no registered id (None).
            print(f"ready {rt.worker_id or args.worker_id}", flush=True)
            await stop.wait()
    finally:
        await RECORDER.close()
    print("stopped", flush=True)


async def start_one(args: argparse.Namespace) -> None:
    global RECORDER
    RECORDER = Recorder(args.record, "client")
    await RECORDER.open()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        async with open_runtime(args.store, workflows=WORKFLOWS, worker=False) as rt:
            await rt.start(BY_NAME[args.workflow], json.loads(args.input), run_id=args.run_id)
            print("started", flush=True)
            if args.then == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if args.then == "stay":
                await stop.wait()
    finally:
        await RECORDER.close()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="worker_proc.py")
    modes = parser.add_subparsers(dest="mode", required=True)
    worker = modes.add_parser("worker")
    worker.add_argument("store")
    worker.add_argument("record")
    worker.add_argument("worker_id")
    worker.add_argument("lease_seconds", type=float)
    worker.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    worker.add_argument("--max-runs", type=int, default=None)
    worker.add_argument("--workflows", default=None)
    worker.add_argument("--passivate-after", type=float, default=None)
    client = modes.add_parser("client")
    client.add_argument("store")
    client.add_argument("record")
    client.add_argument("workflow", choices=sorted(BY_NAME))
    client.add_argument("run_id")
    client.add_argument("input")
    client.add_argument("--then", choices=["exit", "kill", "stay"], default="exit")
    client.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    coro = serve(args) if args.mode == "worker" else start_one(args)
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(coro)
    else:
        asyncio.run(coro)


if __name__ == "__main__":
    main(sys.argv[1:])
