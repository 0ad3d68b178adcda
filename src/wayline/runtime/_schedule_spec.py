"""When a schedule fires: its spec checked, its fire times computed, and `Schedule`, the form
``@workflow(schedules=[...])`` declares one in.

Cron expressions are evaluated by cronsim, in the schedule's IANA time zone (zoneinfo), with
Debian cron's rules at daylight-saving changes, as cronsim documents them: a job at a fixed
time that falls in the hour skipped when clocks go forward runs right after the change (02:30
on a night that jumps from 02:00 to 03:00 runs at 03:00), one in the hour repeated when clocks
go back runs once, and jobs that run more often than hourly run on the wall clock as usual.
``every=`` intervals are plain seconds, counted from ``start_at`` (or the epoch): no time zone.

Each fire's jitter is a fixed fraction of ``jitter`` drawn from the schedule id and the fire's
nominal time (a hash, not a random draw), so every process and every restart computes the
same fire times.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from .._errors import ScheduleSpecError
from ..persistence import OVERLAP_POLICIES, ScheduleSpec

#: What happens to a fire while the schedule's previous run is still going (Temporal's set):
#: ``skip`` it; ``buffer_one`` (start it when the running one ends, at most one waiting);
#: ``buffer_all`` (every one, in order, one after the other); ``cancel_other`` (cancel the
#: running one, start this one once it has ended); ``terminate_other`` (cancel the running one
#: and start this one at once); ``allow_all`` (start it anyway, runs overlap).
Overlap = Literal["skip", "buffer_one", "buffer_all", "cancel_other", "terminate_other", "allow_all"]

#: Missed fires older than this at a catch-up are skipped and counted (seconds): a day covers
#: a process down overnight for daily jobs, and bounds how many old fires one restart starts.
DEFAULT_CATCHUP_WINDOW = 86400.0

#: Shorthands cronsim does not read itself.
_NICKNAMES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

Instant = datetime | float | int
Duration = timedelta | float | int


def seconds(value: Duration, what: str, schedule_id: str | None) -> float:
    """A duration in seconds (a number of seconds or a timedelta), checked to be >= 0."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ScheduleSpecError(schedule_id, f"{what} must be a number of seconds >= 0 or a timedelta, got {value!r}")
    return float(value)


def epoch(value: Instant, what: str, schedule_id: str | None) -> float:
    """An instant as epoch seconds (a timezone-aware datetime, or epoch seconds)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ScheduleSpecError(schedule_id, f"{what} needs a timezone-aware datetime (e.g. tzinfo=UTC)")
        return value.timestamp()
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ScheduleSpecError(
            schedule_id, f"{what} must be a timezone-aware datetime or epoch seconds, got {value!r}"
        )
    return float(value)


def check_overlap(value: str, schedule_id: str | None, what: str = "overlap") -> str:
    if value not in OVERLAP_POLICIES:
        raise ScheduleSpecError(schedule_id, f"{what} must be one of {', '.join(OVERLAP_POLICIES)}, got {value!r}")
    return value


def build_spec(
    schedule_id: str | None,
    *,
    cron: str | None,
    every: Duration | None,
    tz: str | None,
    jitter: Duration,
    start_at: Instant | None,
    end_at: Instant | None,
) -> ScheduleSpec:
    """A checked `ScheduleSpec`.

    Raises:
        ScheduleSpecError: what is wrong, and what to give instead.
    """
    if (cron is None) == (every is None):
        raise ScheduleSpecError(schedule_id, "give exactly one of cron= (an expression) or every= (an interval)")
    interval: float | None = None
    if every is not None:
        interval = seconds(every, "every", schedule_id)
        if interval <= 0:
            raise ScheduleSpecError(schedule_id, "every= must be a positive interval")
        if tz is not None:
            raise ScheduleSpecError(schedule_id, "tz= applies to cron= only; every= counts plain seconds")
    zone = tz or "UTC"
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleSpecError(
            schedule_id, f"unknown time zone {zone!r}; give an IANA name such as 'Europe/Paris'"
        ) from None
    if cron is not None:
        if not isinstance(cron, str):
            raise ScheduleSpecError(schedule_id, f"cron= must be a string, got {cron!r}")
        try:
            CronSim(_NICKNAMES.get(cron.strip(), cron), datetime(2026, 1, 1, tzinfo=UTC))
        except CronSimError as exc:
            raise ScheduleSpecError(
                schedule_id,
                f"cron expression {cron!r} is invalid ({exc}); give five fields: minute hour day-of-month "
                "month day-of-week, e.g. '0 2 * * *' for 02:00 every day",
            ) from None
    start = None if start_at is None else epoch(start_at, "start_at", schedule_id)
    end = None if end_at is None else epoch(end_at, "end_at", schedule_id)
    if start is not None and end is not None and end < start:
        raise ScheduleSpecError(schedule_id, "end_at is before start_at")
    return ScheduleSpec(
        cron=cron,
        every=interval,
        tz=zone,
        jitter=seconds(jitter, "jitter", schedule_id),
        start_at=start,
        end_at=end,
    )


class Timetable:
    """The fire times of one schedule (pure: computed from its spec and id alone)."""

    __slots__ = ("_expr", "_zone", "schedule_id", "spec")

    def __init__(self, schedule_id: str, spec: ScheduleSpec) -> None:
        self.schedule_id = schedule_id
        self.spec = spec
        self._zone = ZoneInfo(spec.tz)
        self._expr = _NICKNAMES.get(spec.cron.strip(), spec.cron) if spec.cron is not None else None

    def jitter(self, at: float) -> float:
        """How long the fire at nominal time ``at`` is delayed: a fixed fraction of the jitter."""
        if not self.spec.jitter:
            return 0.0
        digest = hashlib.blake2b(f"{self.schedule_id}\0{at!r}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64 * self.spec.jitter

    def fires(self, after: float) -> Iterator[float]:
        """Nominal fire times strictly after ``after``, in order, within start_at and end_at."""
        spec = self.spec
        if spec.start_at is not None and after < spec.start_at:
            after = math.nextafter(spec.start_at, -math.inf)  # start_at itself may fire
        times = self._every(after) if spec.every is not None else self._cron(after)
        for at in times:
            if spec.end_at is not None and at > spec.end_at:
                return
            yield at

    def _every(self, after: float) -> Iterator[float]:
        every = self.spec.every
        assert every is not None
        anchor = self.spec.start_at or 0.0
        k = math.floor((after - anchor) / every) + 1
        while True:
            at = anchor + k * every
            if at > after:  # float rounding at the boundary
                yield at
            k += 1

    def _cron(self, after: float) -> Iterator[float]:
        assert self._expr is not None
        start = datetime.fromtimestamp(after, self._zone)
        try:
            for moment in CronSim(self._expr, start):
                yield moment.timestamp()
        except StopIteration:  # pragma: no cover - cronsim ends its iteration itself
            return

    def next_fire(self, after: float) -> float | None:
        """The first nominal fire time after ``after``, if there is one."""
        return next(self.fires(after), None)

    def upcoming(self, after: float, count: int) -> list[float]:
        """The next ``count`` fire times after ``after``, jitter included (when runs start)."""
        out = []
        for at in self.fires(after):
            out.append(at + self.jitter(at))
            if len(out) == count:
                break
        return out


def iso(at: float, *, precise: bool = False) -> str:
    """``2026-03-08T07:00:00Z``: an instant in UTC, to the second (to the microsecond if it
    has a fraction, or ``precise``)."""
    moment = datetime.fromtimestamp(at, UTC)
    spec = "microseconds" if precise or moment.microsecond else "seconds"
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")


def fire_run_id(schedule_id: str, at: float) -> str:
    """The run a fire at nominal time ``at`` starts: the same in every process, so one fire
    never starts two runs (scheduled fires and backfills of the same instant are one run)."""
    return f"{schedule_id}@{iso(at)}"


def trigger_run_id(schedule_id: str, at: float, number: int) -> str:
    """The run the ``number``-th trigger of a schedule starts, asked at ``at``."""
    return f"{schedule_id}@{iso(at, precise=True)}/trigger-{number}"


@dataclass(frozen=True)
class Schedule:
    """A schedule declared on a workflow: ``@workflow(schedules=[Schedule(cron="0 2 * * *")])``.

    An owning runtime (``open_runtime``) makes the stored schedules match the code: it creates
    a declared schedule that is missing, updates one whose definition changed (keeping its
    state: paused or not, what it has fired, what it buffered), and deletes one the code no
    longer declares (runs it started go on; see the README for why). The arguments are those
    of ``rt.create_schedule``; ``id`` defaults to the workflow's name, so a workflow that
    declares several schedules names each.

    Raises:
        ScheduleSpecError: the definition is invalid (checked here, at import time).
    """

    cron: str | None = None
    every: Duration | None = None
    id: str | None = None
    input: Any = None
    tz: str | None = None
    overlap: Overlap = "skip"
    catchup_window: Duration = DEFAULT_CATCHUP_WINDOW
    jitter: Duration = 0.0
    start_at: Instant | None = None
    end_at: Instant | None = None
    version: str | None = None

    def __post_init__(self) -> None:
        self.spec()  # checked now, not at open_runtime
        check_overlap(self.overlap, self.id)
        seconds(self.catchup_window, "catchup_window", self.id)

    def spec(self) -> ScheduleSpec:
        return build_spec(
            self.id,
            cron=self.cron,
            every=self.every,
            tz=self.tz,
            jitter=self.jitter,
            start_at=self.start_at,
            end_at=self.end_at,
        )
