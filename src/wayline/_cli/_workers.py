"""``wayline workers list``: the workers that run a database's runs.

On PostgreSQL, the registered workers (`Store.list_workers`): each with its host, pid, the
unfinished runs it owns, when it last renewed its lease and when that lease runs out. A worker
whose lease has run out is dead or paused: the next claim by another worker takes its runs.

On SQLite, the one process that owns the database (holds its lock), or that none does. The
command opens the store only to read: it registers nowhere and claims nothing.
"""

from __future__ import annotations

import time
from typing import Any

from ..persistence import RunStatus, SQLiteStore, WorkerInfo, is_postgres_url, open_postgres_store
from . import _output as out
from ._commands import Options, _existing_db, _note
from ._errors import OK, CliError
from ._owners import OwnerProcess, sqlite_owner
from ._time import iso, relative

_UNFINISHED = [s for s in RunStatus if not s.finished]


def _doc(w: WorkerInfo, now: float) -> dict[str, Any]:
    return {
        "worker_id": w.worker_id,
        "host": w.host,
        "pid": w.pid,
        "runs": w.runs,
        "started_at": iso(w.started_at),
        "heartbeat_at": iso(w.heartbeat_at),
        "lease_until": iso(w.lease_until),
        "heartbeat_age_s": round(now - w.heartbeat_at, 3),
        "lease_left_s": round(w.lease_until - now, 3),
        "expired": w.lease_until < now,
        "command": None,
    }


def _owner_doc(owner: OwnerProcess, runs: int) -> dict[str, Any]:
    # The fields of a PostgreSQL worker, so that a script reads both the same way: a SQLite
    # owner has no worker id and no lease (it holds the database until it exits).
    return {
        "worker_id": None,
        "host": owner.host,
        "pid": owner.pid,
        "runs": runs,
        "started_at": None,
        "heartbeat_at": None,
        "lease_until": None,
        "heartbeat_age_s": None,
        "lease_left_s": None,
        "expired": False,
        "command": owner.command,
    }


def _lease(w: WorkerInfo, now: float) -> str:
    if w.lease_until < now:
        return f"expired {relative(w.lease_until, now)}"
    return f"{w.lease_until - now:.0f}s left"


async def workers_list(opts: Options) -> int:
    if is_postgres_url(opts.db):
        return await _postgres_workers(opts)
    return await _sqlite_owner(opts)


async def _postgres_workers(opts: Options) -> int:
    store = open_postgres_store(opts.db)
    await store.start()
    try:
        workers = await store.list_workers()
    finally:
        await store.close()
    # Ages by this host's clock against times the server stamped: keep the clocks in sync.
    now = time.time()
    if opts.json:
        out.emit_json([_doc(w, now) for w in workers])
        return OK
    if not workers:
        print(
            f"no workers are registered on {store.display_url}: nothing runs its runs until a process opens "
            "it with open_runtime(url, workflows=[...])"
        )
        return OK
    rows = [
        (
            w.worker_id,
            w.host,
            str(w.pid),
            str(w.runs),
            iso(w.started_at) or "-",
            relative(w.heartbeat_at, now),
            _lease(w, now),
        )
        for w in workers
    ]
    print(out.table(("WORKER", "HOST", "PID", "RUNS", "STARTED", "HEARTBEAT", "LEASE"), rows))
    return OK


async def _sqlite_owner(opts: Options) -> int:
    path = _existing_db(opts)
    store = SQLiteStore(path, busy_timeout=opts.lock_timeout)
    try:
        owner = sqlite_owner(store)
    except OSError as exc:
        raise CliError(
            f"cannot tell which process owns database {path!r} on this system ({exc}); wayline reads it "
            "from /proc/locks, which only Linux has"
        ) from None
    runs = 0
    if owner is not None:
        await store.start()
        try:
            runs = await store.count_runs(_UNFINISHED)
        finally:
            await store.close()
    if opts.json:
        out.emit_json([] if owner is None else [_owner_doc(owner, runs)])
    elif owner is None:
        print(
            f"no process owns database {path!r}: nothing runs its runs until a process opens it with "
            "open_runtime(path, workflows=[...]) (a SQLite database has one worker, the process that owns it)"
        )
    else:
        command = owner.command or "-"
        row = (str(owner.pid), owner.host, str(runs), command if len(command) <= 100 else command[:97] + "...")
        print(out.table(("PID", "HOST", "RUNS", "COMMAND"), [row]))
        _note(f"(a SQLite database has one worker: this process runs all {runs} unfinished runs)")
    return OK
