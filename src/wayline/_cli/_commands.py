"""The commands. Each takes the common options and its own arguments and returns an exit code.

A command that only reads runs or sends them messages opens the database as a client
(``worker=False``, no inbox polling): it claims no ownership, so it works beside the worker
that runs the runs, and its messages reach them through the durable inbox. A command that
runs a state machine (``asl run``, ``redrive``) becomes the database's owner for as long as
it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import sys
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import RedriveError, RunCancelled, RunConflictError, RunFailed, RunNotFoundError
from ..errors import AslDefinitionError
from ..persistence import RunStatus, SQLiteStore, Store, is_postgres_url, open_postgres_store
from ..runtime import Runtime, StateMachine, WorkflowDef, open_runtime
from . import _output as out
from ._args import load_resources, load_workflow, parse_json, parse_since, parse_statuses, parse_where, read_text
from ._details import detail, details
from ._errors import FAILED, OK, CliError, UsageError
from ._owners import run_owners
from ._progress import progress

# How often a command that waits on a run it does not run itself reads the run's status.
_POLL = 0.2


@dataclass
class Options:
    """The options every command takes."""

    db: str
    json: bool
    lock_timeout: float
    #: What to tell the user if the command is interrupted (set by commands that start work).
    on_interrupt: list[str] = field(default_factory=list)


def _existing_db(opts: Options) -> str:
    """The database path, which must exist: reading or messaging never creates a database."""
    if not os.path.exists(opts.db):
        raise CliError(
            f"database {opts.db!r} does not exist; pass --db PATH or set WAYLINE_DB "
            "(commands that read or send messages never create one)"
        )
    if os.path.isdir(opts.db):
        raise CliError(f"database {opts.db!r} is a directory, not a database file")
    return opts.db


def _store(opts: Options, *, existing: bool) -> Store:
    """The store ``--db`` names: a ``postgresql://`` URL (whose database must exist: wayline
    never creates a PostgreSQL database) or a SQLite file."""
    if is_postgres_url(opts.db):
        return open_postgres_store(opts.db)
    return SQLiteStore(_existing_db(opts) if existing else opts.db, busy_timeout=opts.lock_timeout)


@contextlib.asynccontextmanager
async def _client(opts: Options) -> AsyncIterator[Runtime]:
    store = _store(opts, existing=True)
    async with open_runtime(store, worker=False, inbox_poll_interval=None) as rt:
        yield rt


@contextlib.asynccontextmanager
async def _owner(opts: Options, workflow: WorkflowDef[Any, Any] | StateMachine) -> AsyncIterator[Runtime]:
    # Owner: it resumes this workflow's interrupted runs too, and polls the inbox so that
    # signals and callbacks sent by other `wayline` processes reach its runs.
    store = _store(opts, existing=False)
    async with open_runtime(store, workflows=[workflow], worker=True, inbox_poll_interval=0.1) as rt:
        yield rt


def _db_flag(opts: Options) -> str:
    return "" if opts.db == "wayline.db" else f" --db {shlex.quote(opts.db)}"


def _note(text: str) -> None:
    print(text, file=sys.stderr)


# --- runs ------------------------------------------------------------------------------------


async def runs_list(
    opts: Options,
    status: str | None,
    workflow: str | None,
    since: str | None,
    limit: int,
    where: list[str] | None = None,
    tag: str | None = None,
) -> int:
    metadata = parse_where(where or [])
    statuses = parse_statuses(status) if status else None
    after = parse_since(since) if since else None
    if limit < 1:
        raise UsageError(f"--limit must be at least 1, got {limit}")
    async with _client(opts) as rt:
        # One more than shown: whether to say that more runs match, without reading them all.
        runs = await rt.list_runs(
            status=statuses,
            workflow=workflow,
            since=after,
            newest_first=True,
            limit=limit + 1,
            metadata=metadata or None,
            tag=tag,
        )
        newest = runs[:limit]
        found = await details(rt, [r.run_id for r in newest])
        owners = await run_owners(rt.store, newest)
    if opts.json:
        out.emit_json([out.run_doc(r, found[r.run_id], owners[r.run_id]) for r in newest])
    elif not newest:
        print("no runs match")
    else:
        print(out.runs_table(newest, found, owners))
    if len(runs) > limit and not opts.json:
        _note(f"(the {limit} most recent matching runs; more match: raise --limit to see them)")
    return OK


async def runs_purge(opts: Options, before: str, status: str | None, workflow: str | None, dry_run: bool) -> int:
    try:
        cutoff = parse_since(before)
    except UsageError:
        raise UsageError(
            f"--before {before!r} is neither a duration back from now (30s, 15m, 1h, 2d, 1w) nor an ISO 8601 "
            "time (2026-11-22 or 2026-11-22T10:00:00Z)"
        ) from None
    statuses = parse_statuses(status) if status else None
    if statuses is not None and any(not s.finished for s in statuses):
        raise UsageError("--status takes finished statuses only: SUCCEEDED, FAILED, CANCELLED")
    async with _client(opts) as rt:
        count = await rt.purge(before=cutoff, status=statuses, workflow=workflow, dry_run=dry_run)
    if opts.json:
        out.emit_json({"purged": count, "dry_run": dry_run})
    elif dry_run:
        print(f"{count} runs would be purged (dry run: nothing deleted)")
    else:
        print(f"purged {count} runs")
    return OK


async def runs_show(opts: Options, run_id: str) -> int:
    async with _client(opts) as rt:
        info = await rt.describe(run_id)
        more = await detail(rt, await rt.store.get_run(run_id))
        owner = (await run_owners(rt.store, [info]))[run_id]
    if opts.json:
        out.emit_json(out.run_doc(info, more, owner))
    else:
        print(out.run_text(info, more, owner))
    return OK


async def runs_history(opts: Options, run_id: str) -> int:
    async with _client(opts) as rt:
        events = [e async for e in rt.history(run_id)]
        note = out.history_note(await rt.describe(run_id))
    if opts.json:
        out.emit_json([out.event_doc(e) for e in events])
    else:
        for event in events:
            print(out.event_text(event))
        if note is not None:
            _note(note)
    return OK


async def runs_trace(opts: Options, run_id: str, url_template: str | None) -> int:
    """The run's trace id (stored with it since rt.start), and the viewer link made from
    ``url_template``."""
    if url_template is not None and "{trace_id}" not in url_template:
        raise UsageError(f"--trace-url {url_template!r} has no {{trace_id}} to fill in")
    async with _client(opts) as rt:
        found = (await rt.describe(run_id)).trace_id
    if found is None:
        raise CliError(
            f"run {run_id!r} has no trace: no OpenTelemetry SDK was configured when it ran "
            "(configure_telemetry(), --otlp-endpoint, or your own providers passed to open_runtime)"
        )
    url = None
    if url_template is not None:
        try:
            url = url_template.format(trace_id=found, run_id=urllib.parse.quote(run_id, safe=""))
        except (KeyError, IndexError, ValueError) as exc:
            raise UsageError(
                f"--trace-url {url_template!r} cannot be filled in ({exc!r}): it may use {{trace_id}} and {{run_id}}"
            ) from None
    if opts.json:
        out.emit_json({"run_id": run_id, "trace_id": found, "url": url})
    else:
        print(f"trace {found}" + (f"  {url}" if url else ""))
    return OK


async def runs_wait(opts: Options, run_id: str, limit: float | None) -> int:
    """Wait for a run that some worker runs to end, reading its status from the database."""
    async with _client(opts) as rt:
        info = await rt.describe(run_id)
        async with progress(rt, run_id):
            try:
                async with asyncio.timeout(limit):
                    while not info.status.finished:
                        await asyncio.sleep(_POLL)
                        info = await rt.describe(run_id)
            except TimeoutError:
                raise CliError(f"run {run_id!r} is still {info.status.value} after {limit:g}s") from None
    return _report_end(opts, out.run_doc(info))


# --- messages --------------------------------------------------------------------------------


async def signal(opts: Options, run_id: str, name: str, payload_text: str) -> int:
    payload = parse_json(payload_text, "the signal payload (argument JSON)")
    async with _client(opts) as rt:
        await rt.signal(run_id, name, payload)
    if opts.json:
        out.emit_json({"run_id": run_id, "signal": name, "sent": True})
    else:
        print(f"signal {name!r} committed to the inbox of run {run_id!r}; the worker running it delivers it")
    return OK


async def cancel(opts: Options, run_id: str, reason: str | None) -> int:
    async with _client(opts) as rt:
        await rt.cancel(run_id, reason)
    if opts.json:
        out.emit_json({"run_id": run_id, "cancel_requested": True, "reason": reason})
    else:
        print(f"cancel of run {run_id!r} committed; the worker running it applies it")
    return OK


def _callback_api(rt: Runtime, name: str) -> Any:
    method = getattr(rt, name, None)
    if method is None:
        raise CliError(f"this wayline has no Runtime.{name}; upgrade wayline to use callback commands")
    return method


async def callback_complete(opts: Options, token: str, output_text: str) -> int:
    output = parse_json(output_text, "the callback output (argument JSON)")
    async with _client(opts) as rt:
        await _callback_api(rt, "complete_callback")(token, output)
    return _callback_done(opts, "completed")


async def callback_fail(opts: Options, token: str, error: str, cause: str | None) -> int:
    if not error.strip():
        raise UsageError("--error must name the error the run sees, e.g. --error Rejected")
    async with _client(opts) as rt:
        await _callback_api(rt, "fail_callback")(token, error, cause=cause)
    return _callback_done(opts, "failed")


async def callback_heartbeat(opts: Options, token: str) -> int:
    async with _client(opts) as rt:
        await _callback_api(rt, "heartbeat")(token)
    return _callback_done(opts, "heartbeat")


def _callback_done(opts: Options, what: str) -> int:
    if opts.json:
        out.emit_json({"callback": what, "sent": True})
    else:
        print(f"callback {what}: committed; the worker running the run delivers it")
    return OK


# --- starting code workflows ------------------------------------------------------------------


async def start(opts: Options, target: str, input_text: str | None, run_id: str | None, wait: bool) -> int:
    """``wayline start MODULE:WORKFLOW``: commit a new run; with ``--wait``, also run it here."""
    workflow = load_workflow(target)
    takes_input = getattr(workflow, "takes_input", True)  # a StateMachine always takes one
    if input_text is not None and not takes_input:
        raise UsageError(f"workflow {workflow.name!r} takes no input (its function is (ctx)); leave out --input")
    if input_text is None and takes_input and isinstance(workflow, WorkflowDef):
        raise UsageError(f"workflow {workflow.name!r} takes an input; give it with --input JSON")
    payload = parse_json(input_text, "--input") if input_text is not None else None
    run_id = run_id or uuid.uuid4().hex
    here = f"wayline start {shlex.quote(target)} --run-id {shlex.quote(run_id)}"
    if input_text is not None:
        here += f" --input {shlex.quote(input_text)}"
    here += f"{_db_flag(opts)} --wait"
    if wait:
        async with _owner(opts, workflow) as rt:
            await rt.start(workflow, payload, run_id=run_id)
            opts.on_interrupt.append(f"run {run_id!r} is saved; `{here}` resumes it")
            return await _finish(opts, rt, run_id)
    return await _commit(opts, workflow, payload, run_id, here)


async def _commit(
    opts: Options, workflow: WorkflowDef[Any, Any] | StateMachine, payload: Any, run_id: str, here: str
) -> int:
    """Commit the run and leave it for a worker: nothing of it runs in this process (a
    client: the run is committed with the message that brings it to a worker)."""
    store = _store(opts, existing=False)
    async with open_runtime(store, workflows=[workflow], worker=False, inbox_poll_interval=None) as rt:
        existing = await rt.store.get_run(run_id)
        if existing is None:
            await rt.start(workflow, payload, run_id=run_id)
        elif existing.workflow != workflow.name:
            raise RunConflictError(run_id, existing.workflow, workflow.name)
    status = existing.status.value if existing is not None else RunStatus.RUNNING.value
    if opts.json:
        out.emit_json(
            {
                "run_id": run_id,
                "workflow": workflow.name,
                "version": workflow.version,
                "status": status,
                "created": existing is None,
            }
        )
    elif existing is not None:
        print(f"run {run_id} of workflow {workflow.name!r} exists already ({status}); nothing started")
    else:
        print(run_id)
        _note(
            f"run {run_id} of workflow {workflow.name!r} is committed, and nothing of it ran here. A worker that "
            f"registers {workflow.name!r} runs it: a running one takes it at once, otherwise the next to open the "
            f"database; or run it here: `{here}`"
        )
    return OK


# --- state machines --------------------------------------------------------------------------


def asl_validate(opts: Options, file: str) -> int:
    text = read_text(file, "definition")
    try:
        machine = StateMachine(text, name=Path(file).stem)
    except AslDefinitionError as exc:
        if opts.json:
            out.emit_json({"file": file, "valid": False, "problems": list(exc.problems)})
        else:
            count = len(exc.problems)
            print(f"{file}: invalid, {count} problem{'s' if count != 1 else ''}:")
            for problem in exc.problems:
                print(f"  {problem}")
        return FAILED
    states = machine.definition.get("States", {})
    if opts.json:
        out.emit_json({"file": file, "valid": True, "problems": [], "states": len(states)})
    else:
        print(f"{file}: valid ({len(states)} states, {machine.query_language})")
    return OK


def _machine(file: str, name: str, resources: str | None, version: str = "1") -> StateMachine:
    text = read_text(file, "definition")
    bound = load_resources(resources) if resources else {}
    return StateMachine(text, name=name, resources=bound, version=version)


async def asl_run(
    opts: Options, file: str, input_text: str, resources: str | None, name: str | None, run_id: str | None
) -> int:
    payload = parse_json(input_text, "--input")
    machine = _machine(file, name or Path(file).stem, resources)
    run_id = run_id or uuid.uuid4().hex
    async with _owner(opts, machine) as rt:
        await rt.start(machine, payload, run_id=run_id)
        again = f"wayline asl run {shlex.quote(file)} --run-id {shlex.quote(run_id)}{_db_flag(opts)}"
        opts.on_interrupt.append(
            f"run {run_id!r} is saved; `{again}` resumes it (with the same --resources and --name)"
        )
        return await _finish(opts, rt, run_id)


async def redrive(opts: Options, run_id: str, definition: str, resources: str | None) -> int:
    async with _client(opts) as rt:
        rec = await rt.store.get_run(run_id)
    if rec is None:
        raise RunNotFoundError(run_id)
    # Checked before registering the definition: registered under a code workflow's name,
    # it would be used to recover that workflow's unfinished runs.
    if not isinstance(rec.state, dict):
        raise RedriveError(run_id, f"it is a run of code workflow {rec.workflow!r}; start a new run instead")
    if rec.status is not RunStatus.FAILED:
        raise RedriveError(run_id, f"only FAILED runs can be redriven, and it is {rec.status.value}")
    machine = _machine(definition, rec.workflow, resources, rec.version)
    async with _owner(opts, machine) as rt:
        await rt.redrive(run_id)
        again = (
            f"wayline asl run {shlex.quote(definition)} --name {shlex.quote(rec.workflow)} "
            f"--run-id {shlex.quote(run_id)}{_db_flag(opts)}"
        )
        opts.on_interrupt.append(
            f"run {run_id!r} is saved mid-redrive; `{again}` resumes it (with the same --resources)"
        )
        return await _finish(opts, rt, run_id)


async def _finish(opts: Options, rt: Runtime, run_id: str) -> int:
    """Wait for a run this process runs, showing progress, then report how it ended."""
    async with progress(rt, run_id):
        try:
            await rt.get_handle(run_id).result()
        except (RunFailed, RunCancelled):
            pass  # reported from the record below, the same way as a success
    return _report_end(opts, out.run_doc(await rt.describe(run_id)))


def _report_end(opts: Options, doc: dict[str, Any]) -> int:
    status = doc["status"]
    if opts.json:
        out.emit_json(doc)
    elif status == RunStatus.SUCCEEDED.value:
        print(json.dumps(doc["output"], indent=2, ensure_ascii=False))
        _note(f"run {doc['run_id']} succeeded")
    if status == RunStatus.SUCCEEDED.value:
        return OK
    if not opts.json:
        what = f"{doc['error']}: {doc['cause']}" if doc["cause"] else doc["error"] or "no reason given"
        verb = "was cancelled" if status == RunStatus.CANCELLED.value else "failed"
        _note(f"wayline: run {doc['run_id']!r} {verb}: {what}")
    return FAILED
