"""``wayline schedules list|show|pause|resume|trigger|backfill|delete``.

The database is opened as a client: a change is committed to the schedule's record before the
command returns, and the worker that owns the database acts on it at its next look at the
store (within a second).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from ..runtime import ScheduleInfo
from . import _output as out
from ._commands import Options, _client
from ._errors import OK, UsageError
from ._time import iso, when


def _spec(info: ScheduleInfo) -> str:
    if info.cron is not None:
        return f"cron {info.cron!r} ({info.tz})"
    return f"every {info.every:g}s"


def _doc(info: ScheduleInfo) -> dict[str, Any]:
    return {
        "schedule_id": info.schedule_id,
        "workflow": info.workflow,
        "version": info.version,
        "input": out.plain(info.input),
        "cron": info.cron,
        "every": info.every,
        "tz": info.tz,
        "jitter": info.jitter,
        "start_at": iso(info.start_at),
        "end_at": iso(info.end_at),
        "overlap": info.overlap,
        "catchup_window": info.catchup_window,
        "paused": info.paused,
        "note": info.note,
        "declared": info.declared,
        "unreadable": info.unreadable,
        "next_fires": [iso(t) for t in info.next_fires],
        "running": list(info.running),
        "buffered": [iso(t) for t in info.buffered],
        "started": info.started,
        "skipped": info.skipped,
        "missed": info.missed,
        "recent": [
            {
                "at": iso(a.at),
                "outcome": a.outcome,
                "kind": a.kind,
                "run_id": a.run_id,
                "count": a.count,
                "until": iso(a.until),
                "note": a.note,
            }
            for a in info.recent
        ],
        "last_runs": [
            {"run_id": r.run_id, "scheduled_at": iso(r.scheduled_at), "status": r.status.value if r.status else None}
            for r in info.last_runs
        ],
        "created_at": iso(info.created_at),
        "updated_at": iso(info.updated_at),
    }


def _state(info: ScheduleInfo) -> str:
    if info.unreadable is not None:
        return "unreadable input"
    return f"paused: {info.note}" if info.paused and info.note else "paused" if info.paused else "active"


async def schedules_list(opts: Options) -> int:
    async with _client(opts) as rt:
        infos = await rt.list_schedules()
    if opts.json:
        out.emit_json([_doc(i) for i in infos])
        return OK
    if not infos:
        print("no schedules")
        return OK
    rows = []
    for i in infos:
        last = i.last_runs[-1] if i.last_runs else None
        rows.append(
            (
                i.schedule_id,
                i.workflow,
                _spec(i),
                i.overlap,
                _state(i),
                (iso(i.next_fires[0]) or "-") if i.next_fires else "-",
                f"{last.run_id} {last.status.value if last.status else 'starting'}" if last else "-",
            )
        )
    print(out.table(("SCHEDULE", "WORKFLOW", "WHEN", "OVERLAP", "STATE", "NEXT", "LAST RUN"), rows))
    return OK


async def schedules_show(opts: Options, schedule_id: str) -> int:
    async with _client(opts) as rt:
        info = await rt.get_schedule(schedule_id).describe()
    if opts.json:
        out.emit_json(_doc(info))
        return OK
    now = time.time()
    lines = [
        f"schedule   {info.schedule_id}" + ("  (declared in code)" if info.declared else ""),
        f"workflow   {info.workflow}" + (f" version {info.version}" if info.version else " (newest version)"),
        f"when       {_spec(info)}" + (f", jitter {info.jitter:g}s" if info.jitter else ""),
        f"overlap    {info.overlap}, catch-up window {info.catchup_window:g}s",
        f"state      {_state(info)}",
        f"input      {out.compact(info.input, 200)}"
        if info.unreadable is None
        else f"input      unreadable: {info.unreadable}",
        f"fired      {info.started} started, {info.skipped} skipped, {info.missed} missed",
    ]
    if info.start_at is not None or info.end_at is not None:
        lines.append(f"between    {iso(info.start_at) or '-'} and {iso(info.end_at) or '-'}")
    lines.append("next       " + (", ".join(when(t, now) for t in info.next_fires[:3]) or "none"))
    if info.running:
        lines.append("running    " + ", ".join(info.running))
    if info.buffered:
        lines.append("buffered   " + ", ".join(iso(t) or "" for t in info.buffered))
    for r in info.last_runs:
        lines.append(f"last run   {r.run_id} {r.status.value if r.status else 'starting'}")
    for a in info.recent:
        more = f" x{a.count} until {iso(a.until)}" if a.count > 1 else ""
        note = f" ({a.note})" if a.note else ""
        lines.append(f"recent     {iso(a.at)} {a.kind} {a.outcome}{more} {a.run_id or ''}{note}".rstrip())
    print("\n".join(lines))
    return OK


def _done(opts: Options, what: str, **doc: Any) -> int:
    if opts.json:
        out.emit_json({"ok": True, **doc})
    else:
        print(what)
    return OK


async def schedules_pause(opts: Options, schedule_id: str, note: str | None) -> int:
    async with _client(opts) as rt:
        await rt.get_schedule(schedule_id).pause(note)
    return _done(opts, f"schedule {schedule_id} paused", schedule_id=schedule_id, paused=True)


async def schedules_resume(opts: Options, schedule_id: str, note: str | None) -> int:
    async with _client(opts) as rt:
        await rt.get_schedule(schedule_id).resume(note)
    return _done(opts, f"schedule {schedule_id} resumed", schedule_id=schedule_id, paused=False)


async def schedules_trigger(opts: Options, schedule_id: str, overlap: str | None) -> int:
    async with _client(opts) as rt:
        run_id = await rt.get_schedule(schedule_id).trigger(overlap)  # type: ignore[arg-type]
    return _done(
        opts,
        f"schedule {schedule_id} triggered; the worker starts run {run_id} (unless its overlap policy skips it)",
        schedule_id=schedule_id,
        run_id=run_id,
    )


def _instant(text: str, option: str) -> float:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"{option} {text!r} is not an ISO 8601 time (2026-11-22T02:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


async def schedules_backfill(opts: Options, schedule_id: str, start: str, end: str, overlap: str | None) -> int:
    first, last = _instant(start, "--start"), _instant(end, "--end")
    async with _client(opts) as rt:
        await rt.get_schedule(schedule_id).backfill(first, last, overlap)  # type: ignore[arg-type]
    return _done(
        opts,
        f"schedule {schedule_id}: backfill of {iso(first)} .. {iso(last)} asked; the worker runs it",
        schedule_id=schedule_id,
        start=iso(first),
        end=iso(last),
    )


async def schedules_delete(opts: Options, schedule_id: str) -> int:
    async with _client(opts) as rt:
        await rt.get_schedule(schedule_id).delete()
    return _done(opts, f"schedule {schedule_id} deleted", schedule_id=schedule_id, deleted=True)
