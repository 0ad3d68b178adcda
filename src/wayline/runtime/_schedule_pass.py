"""One pass over a schedule: which of its fires start, wait, are skipped or missed. Pure.

``advance(record, now, ended)`` takes a schedule's stored record, the time, and which of the
runs it counts as running have ended, and returns the record to store (by compare-and-swap)
with the runs to start and to cancel once it is stored. Nothing here reads a clock or a store,
so every overlap policy and catch-up case is checked without an event loop.

The order of a pass: the scheduled fires that came due since the last one (those older than
the catch-up window are missed: counted, not run), then the triggers and backfills asked for,
each fire decided by the overlap policy against the runs still going; then buffered fires
start while nothing runs. A fire decided to start is recorded in ``starting`` and its run is
started after the record is stored, and again by the next pass: starting a run is idempotent
on its id, so a crash in between loses no start and makes none twice.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import msgspec

from ..persistence import ScheduleAction, ScheduleFire, ScheduleRecord, ScheduleRequest
from ._schedule_spec import Timetable, fire_run_id

#: Fires looked at per pass: a long catch-up (a year of minutely fires) goes in slices, with
#: the event loop free between them (each slice ~25 ms of cron evaluation).
LIMIT = 2000
#: Actions kept for ``describe`` (newest last).
RECENT = 10
#: Fires a buffer holds; more are skipped (as Temporal caps its buffer).
BUFFER_MAX = 1000
#: While fires wait for runs to end, the schedule is looked at again after this long even if
#: no end was seen here (a run that ended in another process).
RECHECK = 60.0


@dataclass(frozen=True, slots=True)
class Pass:
    """What a pass decided: the record to store, then the runs to start and to cancel."""

    record: ScheduleRecord
    starts: tuple[ScheduleFire, ...]
    cancels: tuple[str, ...]
    changed: bool
    ended: frozenset[str] = frozenset()  # runs it saw ended, no longer counted


class _Decisions:
    """The state a pass changes as it goes, fire by fire."""

    def __init__(self, rec: ScheduleRecord, now: float, ended: Collection[str]) -> None:
        self.rec = rec
        self.now = now
        self.running = [r for r in rec.running if r not in ended]
        self.cancelling = [r for r in rec.cancelling if r not in ended]
        self.buffered = list(rec.buffered)
        self.starting: list[ScheduleFire] = []
        self.starts = list(rec.starting)  # started again: idempotent, not counted again
        self.cancels: list[str] = []
        self.recent = list(rec.recent)
        self.started, self.skipped, self.missed = rec.started, rec.skipped, rec.missed

    def busy(self) -> bool:
        return bool(self.running or self.cancelling)

    def act(self, fire: ScheduleFire, outcome: str, run_id: str | None = None, note: str | None = None) -> None:
        self.recent.append(
            ScheduleAction(at=fire.at, ts=self.now, outcome=outcome, run_id=run_id, kind=fire.kind, note=note)
        )

    def start(self, fire: ScheduleFire, policy: str) -> None:
        self.starting.append(fire)
        self.starts.append(fire)
        if policy != "allow_all":  # runs that may overlap do not count as running
            self.running.append(fire.run_id)
        self.started += 1
        self.act(fire, "started", fire.run_id)

    def skip(self, fire: ScheduleFire, note: str) -> None:
        self.skipped += 1
        self.act(fire, "skipped", fire.run_id, note)

    def buffer(self, fire: ScheduleFire) -> None:
        if len(self.buffered) >= BUFFER_MAX:
            self.skip(fire, f"the buffer holds {BUFFER_MAX} fires already")
            return
        self.buffered.append(fire)
        self.act(fire, "buffered", fire.run_id)

    def cancel_running(self) -> None:
        for run_id in self.running:
            self.cancels.append(run_id)
            self.cancelling.append(run_id)
            self.recent.append(ScheduleAction(at=self.now, ts=self.now, outcome="cancelled", run_id=run_id))
        self.running = []

    def miss(self, fire: ScheduleFire) -> None:
        self.missed += 1
        last = self.recent[-1] if self.recent else None
        if last is not None and last.outcome == "missed" and last.ts == self.now:
            self.recent[-1] = msgspec.structs.replace(last, count=last.count + 1, until=fire.at, run_id=None)
        else:
            self.recent.append(ScheduleAction(at=fire.at, ts=self.now, outcome="missed", kind=fire.kind))

    def decide(self, fire: ScheduleFire, policy: str) -> None:
        """Apply overlap ``policy`` to ``fire``, given the runs going now."""
        if policy == "allow_all":
            self.start(fire, policy)
        elif policy == "terminate_other":
            self.cancel_running()
            self.start(fire, policy)
        elif not self.busy() and not (self.buffered and policy in ("buffer_one", "buffer_all")):
            self.start(fire, policy)
        elif policy == "skip":
            self.skip(fire, "the previous run is still going")
        elif policy == "buffer_one":
            if self.buffered:
                self.skip(fire, "one fire is buffered already")
            else:
                self.buffer(fire)
        elif policy == "buffer_all":
            self.buffer(fire)
        else:  # cancel_other: the running run is cancelled, this fire waits for its end
            self.cancel_running()
            for dropped in self.buffered:
                self.skip(dropped, "replaced by a later fire (cancel_other)")
            self.buffered = []
            self.buffer(fire)

    def drain(self) -> None:
        """Buffered fires start, in order, while nothing runs."""
        while self.buffered and not self.busy():
            fire = self.buffered.pop(0)
            self.start(fire, "buffer_all")


def advance(rec: ScheduleRecord, now: float, ended: Collection[str], *, limit: int = LIMIT) -> Pass:
    """One pass over schedule ``rec`` at ``now``; ``ended`` names the runs of ``running`` and
    ``cancelling`` that have ended."""
    d = _Decisions(rec, now, ended)
    timetable = Timetable(rec.schedule_id, rec.spec)
    watermark = rec.watermark
    next_fire: float | None = None
    looked = 0
    more = False  # fires or requests left for the next pass
    if not rec.paused:
        for at in timetable.fires(watermark):
            actual = at + timetable.jitter(at)
            if actual > now:
                next_fire = actual
                break
            if looked >= limit:
                more = True
                break
            looked += 1
            watermark = at
            fire = ScheduleFire(at=at, run_id=fire_run_id(rec.schedule_id, at))
            if now - actual > rec.catchup_window:
                d.miss(fire)
            else:
                d.decide(fire, rec.overlap)
    requests: list[ScheduleRequest] = []
    for req in rec.requests:
        if more:
            requests.append(req)
            continue
        if req.kind == "trigger":
            assert req.run_id is not None
            fire = ScheduleFire(at=req.ts, run_id=req.run_id, kind="trigger", overlap=req.overlap)
            d.decide(fire, req.overlap or rec.overlap)
            continue
        # A backfill: every fire of the spec in [start, end], under its own policy.
        assert req.start is not None and req.end is not None
        policy = req.overlap or "buffer_all"
        for at in timetable.fires(req.start - 1e-6):
            if at > req.end:
                break
            if looked >= limit:
                more = True
                requests.append(msgspec.structs.replace(req, start=at))
                break
            looked += 1
            fire = ScheduleFire(at=at, run_id=fire_run_id(rec.schedule_id, at), kind="backfill", overlap=policy)
            d.decide(fire, policy)
    d.drain()
    due: float | None
    if more or (d.buffered and not d.busy()):
        due = now
    else:
        candidates = [] if rec.paused or next_fire is None else [next_fire]
        if d.buffered or d.cancelling:
            candidates.append(now + RECHECK)
        due = min(candidates, default=None)
    new = msgspec.structs.replace(
        rec,
        watermark=watermark,
        requests=tuple(requests),
        buffered=tuple(d.buffered),
        starting=tuple(d.starting),
        running=tuple(d.running),
        cancelling=tuple(d.cancelling),
        recent=tuple(d.recent[-RECENT:]),
        started=d.started,
        skipped=d.skipped,
        missed=d.missed,
        due_at=due,
    )
    changed = new != rec
    if changed:
        new = msgspec.structs.replace(new, revision=rec.revision + 1, updated_at=now)
    gone = frozenset(r for r in (*rec.running, *rec.cancelling) if r in ended)
    return Pass(new, tuple(d.starts), tuple(d.cancels), changed, gone)
