"""Schedule records made and changed by what users do: create, declare, pause, resume,
trigger, backfill, update. Pure: each takes a record and the time and returns the new one
(its revision is bumped by whoever stores it, by compare-and-swap).

Every change sets ``due_at`` to now, so the next pass over the schedule (at once, in the
owning runtime) works out what follows from it: fires to start, its next due time.
"""

from __future__ import annotations

from typing import Any

import msgspec

from .._errors import ScheduleSpecError
from ..persistence import ScheduleRecord, ScheduleRequest, ScheduleSpec, encode
from ._definitions import WorkflowDef
from ._schedule_spec import (
    DEFAULT_CATCHUP_WINDOW,
    Duration,
    Instant,
    Schedule,
    Timetable,
    build_spec,
    check_overlap,
    epoch,
    seconds,
    trigger_run_id,
)

#: The fields of a schedule that ``update`` may change.
UPDATABLE = (
    "cron",
    "every",
    "tz",
    "jitter",
    "start_at",
    "end_at",
    "overlap",
    "catchup_window",
    "input",
    "version",
)


def first_due(schedule_id: str, spec: ScheduleSpec, after: float) -> float | None:
    """When a schedule whose fires are processed up to ``after`` is first due."""
    timetable = Timetable(schedule_id, spec)
    at = timetable.next_fire(after)
    return None if at is None else at + timetable.jitter(at)


def check_input(schedule_id: str, value: Any) -> None:
    encode(value, what=f"the input of schedule {schedule_id!r}")  # PayloadError now, not at a fire


def new_record(
    schedule_id: str,
    workflow: str,
    spec: ScheduleSpec,
    now: float,
    *,
    input: Any = None,
    version: str | None = None,
    overlap: str = "skip",
    catchup_window: Duration = DEFAULT_CATCHUP_WINDOW,
    declared: bool = False,
) -> ScheduleRecord:
    """A new schedule whose first fire is the first after ``now``.

    Raises:
        ScheduleSpecError: a policy is invalid.
        PayloadError: ``input`` is not storable data.
    """
    if not isinstance(schedule_id, str) or not schedule_id or "@" in schedule_id:
        raise ScheduleSpecError(
            None, f"a schedule id must be a non-empty string without '@' (run ids use it), got {schedule_id!r}"
        )
    check_input(schedule_id, input)
    return ScheduleRecord(
        schedule_id=schedule_id,
        workflow=workflow,
        spec=spec,
        watermark=now,
        input=input,
        version=version,
        overlap=check_overlap(overlap, schedule_id),
        catchup_window=seconds(catchup_window, "catchup_window", schedule_id),
        declared=declared,
        created_at=now,
        updated_at=now,
        revision=1,
        due_at=first_due(schedule_id, spec, now),
    )


def declared_record(schedule_id: str, wf: WorkflowDef[Any, Any], schedule: Schedule, now: float) -> ScheduleRecord:
    """The record of a schedule the code declares and the store does not have yet."""
    return new_record(
        schedule_id,
        wf.name,
        schedule.spec(),
        now,
        input=schedule.input,
        version=schedule.version,
        overlap=schedule.overlap,
        catchup_window=schedule.catchup_window,
        declared=True,
    )


def redeclared(rec: ScheduleRecord, wf: WorkflowDef[Any, Any], schedule: Schedule, now: float) -> ScheduleRecord | None:
    """A stored declared schedule brought in line with the code (None: it already is). Its
    state stays: paused or not, what it fired, what waits; a new spec applies from now on."""
    spec = schedule.spec()
    check_input(rec.schedule_id, schedule.input)
    wanted = msgspec.structs.replace(
        rec,
        workflow=wf.name,
        spec=spec,
        input=schedule.input,
        version=schedule.version,
        overlap=check_overlap(schedule.overlap, rec.schedule_id),
        catchup_window=seconds(schedule.catchup_window, "catchup_window", rec.schedule_id),
    )
    if wanted == rec:
        return None
    return _changed(wanted, now, new_spec=spec != rec.spec)


def _changed(rec: ScheduleRecord, now: float, *, new_spec: bool = False) -> ScheduleRecord:
    """``rec`` after a change, due now (the next pass works out what follows). A new spec
    applies from now: fires it would have had before are not run."""
    watermark = max(rec.watermark, now) if new_spec else rec.watermark
    return msgspec.structs.replace(rec, watermark=watermark, due_at=now)


def paused(rec: ScheduleRecord, now: float, note: str | None) -> ScheduleRecord:
    return _changed(msgspec.structs.replace(rec, paused=True, note=note), now)


def resumed(rec: ScheduleRecord, now: float, note: str | None) -> ScheduleRecord:
    """Fires that fell while it was paused are not run: it goes on from now."""
    watermark = max(rec.watermark, now) if rec.paused else rec.watermark
    return _changed(msgspec.structs.replace(rec, paused=False, note=note, watermark=watermark), now)


def triggered(rec: ScheduleRecord, now: float, overlap: str | None) -> tuple[ScheduleRecord, str]:
    """A trigger asked for (carried out by the next pass); and the id of the run it starts."""
    if overlap is not None:
        check_overlap(overlap, rec.schedule_id)
    number = rec.triggers + 1
    run_id = trigger_run_id(rec.schedule_id, now, number)
    request = ScheduleRequest(kind="trigger", ts=now, overlap=overlap, run_id=run_id)
    return _changed(msgspec.structs.replace(rec, requests=(*rec.requests, request), triggers=number), now), run_id


def backfilled(rec: ScheduleRecord, now: float, start: Instant, end: Instant, overlap: str | None) -> ScheduleRecord:
    """A backfill of every fire in [start, end] asked for (carried out by the next pass)."""
    first = epoch(start, "backfill start", rec.schedule_id)
    last = epoch(end, "backfill end", rec.schedule_id)
    if last < first:
        raise ScheduleSpecError(rec.schedule_id, "a backfill's end is before its start")
    if overlap is not None:
        check_overlap(overlap, rec.schedule_id)
    request = ScheduleRequest(kind="backfill", ts=now, overlap=overlap, start=first, end=last)
    return _changed(msgspec.structs.replace(rec, requests=(*rec.requests, request)), now)


def updated(
    rec: ScheduleRecord, now: float, changes: dict[str, Any], known_versions: tuple[str, ...]
) -> ScheduleRecord:
    """``rec`` with ``changes`` (keys of `UPDATABLE`) applied and checked.

    Raises:
        ScheduleSpecError: an unknown field, or an invalid value.
    """
    unknown = sorted(set(changes) - set(UPDATABLE))
    if unknown:
        raise ScheduleSpecError(
            rec.schedule_id, f"cannot update {', '.join(unknown)}; updatable: {', '.join(UPDATABLE)}"
        )
    spec = rec.spec
    cron: str | None = spec.cron
    every: Duration | None = spec.every
    if changes.get("cron") is not None:  # one replaces the other
        cron, every = changes["cron"], None
    if changes.get("every") is not None:
        cron, every = None, changes["every"]
    new_spec = build_spec(
        rec.schedule_id,
        cron=cron,
        every=every,
        tz=None if cron is None else changes.get("tz", spec.tz),
        jitter=changes.get("jitter", spec.jitter),
        start_at=changes.get("start_at", spec.start_at),
        end_at=changes.get("end_at", spec.end_at),
    )
    fields: dict[str, Any] = {"spec": new_spec}
    if "overlap" in changes:
        fields["overlap"] = check_overlap(changes["overlap"], rec.schedule_id)
    if "catchup_window" in changes:
        fields["catchup_window"] = seconds(changes["catchup_window"], "catchup_window", rec.schedule_id)
    if "input" in changes:
        check_input(rec.schedule_id, changes["input"])
        fields["input"] = changes["input"]
    if "version" in changes:
        version = changes["version"]
        if version is not None and version not in known_versions:
            known = ", ".join(repr(v) for v in known_versions)
            raise ScheduleSpecError(rec.schedule_id, f"version {version!r} is not registered (registered: {known})")
        fields["version"] = version
    return _changed(msgspec.structs.replace(rec, **fields), now, new_spec=new_spec != spec)
