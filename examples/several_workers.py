"""Several workers on one PostgreSQL database: python examples/several_workers.py [URL]

Two worker processes and a client share one database. The client (``worker=False``, as a web
handler would open it) starts 20 runs and runs none of them; the workers take them, each at
most 4 at a time (``max_runs=4``), so neither can take them all. Each run's output says which
worker ran it, and the script prints that, then stops the workers.

The database is URL, else $WAYLINE_PG_URL, else
postgresql://postgres@127.0.0.1:5432/wayline_example; one that does not exist is created (the
user must be allowed to create databases). wayline makes its own tables in it.
"""

from __future__ import annotations

import asyncio
import collections
import os
import re
import signal
import sys
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from wayline import RunContext, activity, open_runtime, workflow

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/wayline_example"
WORKERS = ("worker-1", "worker-2")


@activity(name="pack")
async def pack(parcel: int) -> dict[str, Any]:
    await asyncio.sleep(0.2)  # some work, so that runs overlap and both workers get a share
    return {"parcel": parcel, "packed_by": os.environ["EXAMPLE_WORKER"]}


@workflow(name="parcel")
async def parcel(ctx: RunContext, number: int) -> dict[str, Any]:
    return await ctx.run(pack, number)  # type: ignore[no-any-return]


# --- a worker process ---------------------------------------------------------------------


async def work(url: str, name: str) -> None:
    """Run runs until SIGTERM; then close, which gives this worker's runs back to the others."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with open_runtime(url, workflows=[parcel], worker_id=name, max_runs=4) as rt:
        print(f"ready {rt.worker_id}", flush=True)
        await stop.wait()


# --- the client and the two workers ---------------------------------------------------------


async def ensure_database(url: str) -> None:
    """Create the database ``url`` names if it does not exist (through the server's
    ``postgres`` database)."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        sys.exit(f"{url}: name a database of letters, digits and underscores (e.g. .../wayline_example)")
    try:
        conn = await asyncpg.connect(url)
    except asyncpg.InvalidCatalogNameError:
        admin = await asyncpg.connect(urlunsplit(parts._replace(path="/postgres")))
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
            print(f"created database {name}")
        except asyncpg.DuplicateDatabaseError:
            pass  # made meanwhile by someone else
        finally:
            await admin.close()
    else:
        await conn.close()


async def start_worker(url: str, name: str) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--worker",
        name,
        url,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "EXAMPLE_WORKER": name},
    )
    assert proc.stdout is not None
    line = await proc.stdout.readline()
    if not line.startswith(b"ready"):
        raise SystemExit(f"{name} did not start (exit status {await proc.wait()}); see its error above")
    return proc


async def main(url: str) -> int:
    await ensure_database(url)
    workers = [await start_worker(url, name) for name in WORKERS]
    try:
        async with asyncio.timeout(120):
            return await client(url)
    finally:
        for proc in workers:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)  # a clean stop: the worker unregisters
        for proc in workers:
            await proc.wait()


async def client(url: str) -> int:
    batch = uuid.uuid4().hex[:6]  # fresh run ids at every invocation
    async with open_runtime(url, workflows=[parcel], worker=False) as rt:
        registered = await rt.store.list_workers()
        print("workers:", ", ".join(f"{w.worker_id} (pid {w.pid})" for w in registered))
        handles = [await rt.start(parcel, n, run_id=f"parcel-{batch}-{n:02}") for n in range(20)]
        # handle.result() works from any process: it reads the run's end from the database.
        outputs = await asyncio.gather(*(h.result() for h in handles))
    for handle, output in zip(handles, outputs, strict=True):
        print(f"{handle.run_id} ran on {output['packed_by']}")
    shares = collections.Counter(output["packed_by"] for output in outputs)
    print("runs per worker:", ", ".join(f"{name} {shares[name]}" for name in WORKERS))
    if not all(shares[name] for name in WORKERS):
        print("expected both workers to take some of the runs", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        asyncio.run(work(sys.argv[3], sys.argv[2]))
    else:
        target = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("WAYLINE_PG_URL", DEFAULT_URL)
        sys.exit(asyncio.run(main(target)))
