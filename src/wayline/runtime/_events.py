"""Accepting events and dispatching them: the runs they start, the runs they wake.

``rt.send_event`` commits the event (claiming its id, in one transaction) before anything
else, then dispatches it: the unfinished runs whose ``cancel_on`` it matches are cancelled
(`_cancel_on`, before anything starts, so it never cancels a run it starts), every
registered workflow with a trigger that fires starts a run
``"<workflow>@event:<seq>"`` with the event as its input, and every run whose
``ctx.wait_for_event`` is indexed for it gets a wake-up in its durable inbox. Then the event
is marked dispatched. A crash before that mark leaves it for `Events.poll_once`, which runs
at open and on every beat of the inbox poller: every step is idempotent (a cancel finds an
ended run ended; a run id starts one run; a wake-up is only a hint, the woken run reads the
events table).

On a database several workers share (PostgreSQL) the workers need not have the same
workflows: each registers the workflows its event names trigger or cancel (`listens`), each
dispatches its own part of an event, and the store marks the event dispatched only once
every live worker's listeners for its name have had theirs (see
``wayline.persistence._event_listens_postgres``). An event this runtime has dispatched but
could not mark is not dispatched again by its beat: only the mark is tried again.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Protocol

import msgspec

from .._errors import (
    FlowSpecError,
    RateLimitedError,
    RunAlreadyFinishedError,
    RunNotFoundError,
    StoreError,
)
from ..actors import Clock
from ..persistence import (
    DEDUP_WINDOW,
    EVENT_WAKE as WAKE,
    EventRecord,
    EventStore,
    NewEvent,
    Secret,
    Store,
    encode_body,
    event_payload,
    event_wake_message as wake_message,
)
from . import _checks as check
from ._cancel_on import Canceller, cancel_entries
from ._flow_spec import idempotent_run_id
from ._inbox import Mailboxes, deliver, signal
from ._metadata import check_metadata
from ._triggers import Event
from ._workflows import Registry, Workflow

log = logging.getLogger("wayline.events")
#: Undispatched events read per query by the beat (`Events.poll_once`).
POLL_PAGE = 100


class EventSent(msgspec.Struct, frozen=True, kw_only=True):
    """What ``rt.send_event`` did with one event.

    Attributes:
        id: the event's id (the one given, or the one made up).
        seq: its place in the database's order of events (for a duplicate: the earlier one's).
        run_ids: the runs its triggers started (empty for a duplicate).
        duplicate: an event with this id was accepted in the last ``dedup_window`` seconds
            (24 hours by default); this one was not stored and started nothing.
        rate_limited: the workflows whose trigger fired but whose `RateLimit` dropped the
            start (no run of theirs started).
        cancelled_run_ids: the runs it cancelled (``@workflow(cancel_on=...)``), each having
            taken the cancel in (a QUEUED one: ended). Empty when a client (a runtime opened
            with ``worker=False``) sent it: a worker cancels them, as it starts its runs.
    """

    id: str
    seq: int
    run_ids: tuple[str, ...] = ()
    duplicate: bool = False
    rate_limited: tuple[str, ...] = ()
    cancelled_run_ids: tuple[str, ...] = ()


class Starter(Protocol):
    """How the dispatcher starts a triggered run (``Runs.create``)."""

    async def create(
        self,
        wf: Workflow,
        input: Any,
        run_id: str,
        metadata: dict[str, Any] | None = None,
        tags: tuple[str, ...] = (),
        *,
        subject: Any = None,
    ) -> str: ...


class StartingMailboxes(Mailboxes, Starter, Protocol):
    """The runs of a runtime, as the events reach them."""


def as_event(record: EventRecord) -> Event:
    return Event(
        name=record.name,
        data=record.data,
        id=record.event_id,
        ts=record.ts,
        seq=record.seq,
        metadata=record.metadata,
    )


class Dispatched(NamedTuple):
    """What dispatching an event did: the runs it started, the workflows whose rate limit
    dropped a start, the runs it cancelled."""

    started: tuple[str, ...] = ()
    limited: tuple[str, ...] = ()
    cancelled: tuple[str, ...] = ()


def triggered_run_id(workflow: str, seq: int) -> str:
    """The id of the run an event starts: one per workflow and event, whatever dispatches it."""
    return f"{workflow}@event:{seq}"


class Events:
    """The events of one runtime: `send` (``rt.send_event``), and dispatch."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        registry: Registry,
        runs: StartingMailboxes,
        *,
        dedup_window: float = DEDUP_WINDOW,
        owner: bool = True,
    ) -> None:
        table: EventStore | None = getattr(store, "events", None)
        self._table = table
        self._store = store
        self._clock = clock
        self._registry = registry
        self._runs = runs
        self._window = dedup_window
        # A client (the CLI, a runtime opened with worker=False) wakes waiters but leaves
        # events undispatched: the owning runtime's beat starts their runs with its workflows.
        self._owner = owner
        # Events `send` is dispatching now: the beat leaves them alone (it would only repeat
        # idempotent work, but a rate limit would see the start twice).
        self._dispatching: set[int] = set()
        self._unreadable: set[int] = set()  # undispatched events that could not be read, as logged
        self._canceller = Canceller(store, clock, registry, runs)
        # Names any trigger or cancel_on here listens to: their events are dispatched by the
        # owner, not settled when accepted.
        self._triggered = {trigger.event for wf in registry.newest() for trigger in triggers_of(wf)}
        self._triggered |= self._canceller.names
        #: The workflows here each of those names triggers or cancels: a worker on a shared
        #: database registers them, and marks an event dispatched only once the workflows
        #: every live worker listens to it with have been dispatched to.
        self.listens = listens_of(registry)
        # Events this runtime dispatched but could not mark (another worker's workflows
        # listen too): the beat only tries the mark again, it does not dispatch them twice.
        self._parted: set[int] = set()

    @property
    def table(self) -> EventStore:
        if self._table is None:
            raise StoreError(f"the store {type(self._store).__name__} keeps no events")
        return self._table

    def prepare(
        self, call: str, name: Any, data: Any, id: Any, ts: Any, metadata: Mapping[str, Any] | None
    ) -> NewEvent:
        """One event checked and encoded, before anything is stored."""
        check.name(call, "name", name)
        check.name(call, "id", id, optional=True)
        check.number(call, "ts", ts)
        labels = check_metadata(metadata)
        event_id = id if id is not None else uuid.uuid4().hex
        body = encode_body(data, labels, f"the data of event {name!r}")
        return NewEvent(name=name, event_id=event_id, ts=float(ts) if ts is not None else self._clock.time(), body=body)

    async def send(self, events: Sequence[NewEvent]) -> list[EventSent]:
        """Commit ``events`` (one transaction; on SQLite with the wake-ups of the runs waiting
        for them), then dispatch each new one."""
        self._runs.check_open()
        # An event no trigger here listens to is dispatched once its waiters are woken: an
        # owner says so, so that the store can mark it in the accepting transaction.
        events = [msgspec.structs.replace(ev, settled=self._owner and ev.name not in self._triggered) for ev in events]
        now = self._clock.time()
        accepted = await self.table.append(events, now=now, window=self._window)
        mine = {acc.seq for acc in accepted if not acc.duplicate}
        self._dispatching |= mine
        try:
            return await self._dispatch_sent(events, accepted, now)
        finally:
            self._dispatching -= mine

    async def _dispatch_sent(self, events: Sequence[NewEvent], accepted: Sequence[Any], now: float) -> list[EventSent]:
        out = []
        dispatched = []
        for ev, acc in zip(events, accepted, strict=True):
            if acc.duplicate:
                out.append(EventSent(id=ev.event_id, seq=acc.seq, duplicate=True))
                continue
            for run_id, inbox_seq in acc.woken or ():
                await deliver(self._runs, run_id, inbox_seq, wake_message(acc.seq, ev, now))
            done = Dispatched()
            if not ev.settled or acc.woken is None:
                record = await self.table.get(acc.seq)
                if record is not None:
                    done = await self.dispatch(record, wake=acc.woken is None)
                if self._owner:
                    dispatched.append(acc.seq)
                    self._parted.add(acc.seq)
            out.append(
                EventSent(
                    id=ev.event_id,
                    seq=acc.seq,
                    run_ids=done.started,
                    rate_limited=done.limited,
                    cancelled_run_ids=done.cancelled,
                )
            )
        await self.table.mark_dispatched(dispatched)
        return out

    async def dispatch(self, record: EventRecord, *, wake: bool = True) -> Dispatched:
        """Cancel the runs ``record`` matches in their ``cancel_on``, start the runs it
        triggers and (``wake``) wake the runs waiting for it; idempotent: a cancel finds an
        ended run ended, a run id starts one run, and a wake-up answers one indexed wait.

        Runs are cancelled before any is started: an event does not cancel the runs it
        starts.

        A workflow whose key, priority or idempotency function fails for this event starts
        no run; that is logged, and the other workflows' runs start.
        """
        started: list[str] = []
        limited: list[str] = []
        cancelled: tuple[str, ...] = ()
        if self._owner and record.name in self._triggered:
            event = as_event(record)
            cancelled = await self._canceller.cancel_for(record, event)
            for wf in self._registry.newest():
                if any(_fires(wf, t, event) for t in triggers_of(wf)):
                    try:
                        started.append(await self._start(wf, record, event))
                    except RateLimitedError:
                        limited.append(wf.name)
                    except FlowSpecError as exc:
                        log.error("event %s starts no run of workflow %r: %s", record.seq, wf.name, exc)
        done = Dispatched(tuple(started), tuple(limited), cancelled)
        if not wake:
            return done
        payload = event_payload(
            record.seq, record.name, record.event_id, record.ts, record.data, record.metadata
        )  # fmt: skip
        for run_id in await self.table.take_waiters(record.name, record.data):
            try:
                await signal(self._store, self._clock, self._runs, run_id, WAKE + record.name, payload)
            except (RunAlreadyFinishedError, RunNotFoundError):
                await self.table.remove_waits([run_id])
        return done

    async def _start(self, wf: Workflow, record: EventRecord, event: Event) -> str:
        key = getattr(wf, "idempotency_key", None)
        run_id = triggered_run_id(wf.name, record.seq) if key is None else idempotent_run_id(wf.name, key, event)
        metadata = {**record.metadata, "wayline.event": record.name, "wayline.event_id": record.event_id}
        # A Secret in the data stays one: the run's input seals it as any input's.
        data = msgspec.to_builtins(event, builtin_types=(Secret,))
        return await self._runs.create(wf, data, run_id, metadata, subject=event)

    async def poll_once(self) -> None:
        """Dispatch the events a crash (here or in another process) left undispatched.

        One whose data this runtime cannot decrypt (a key it lacks, a damaged ciphertext) is
        passed over, said once, and left undispatched for a runtime with the key; the events
        after it are dispatched all the same (read in pages past it).
        """
        after = 0
        parted, seen = set(self._parted), set[int]()
        while True:
            try:
                pending = await self.table.undispatched(limit=POLL_PAGE, after=after)
            except StoreError as exc:
                log.warning("undispatched events could not be read (%s); trying again later", exc)
                return
            seen.update(record.seq for record in pending)
            if not await self._mark_again([r.seq for r in pending if r.seq in parted]):
                return
            for record in pending:
                if record.unreadable is not None:
                    if record.seq not in self._unreadable:
                        self._unreadable.add(record.seq)
                        log.error(
                            "undispatched event %s (%r, id %r) cannot be read here, so its runs do not start "
                            "(the other events are dispatched): %s",
                            record.seq,
                            record.name,
                            record.event_id,
                            record.unreadable,
                        )
                    continue
                if record.seq in self._dispatching or record.seq in parted:
                    continue
                try:
                    await self.dispatch(record)
                    if self._owner:
                        self._parted.add(record.seq)
                    await self.table.mark_dispatched([record.seq])
                except StoreError as exc:
                    log.warning("event %s could not be dispatched yet (%s); trying again later", record.seq, exc)
                    return
            if len(pending) < POLL_PAGE:
                break
            after = pending[-1].seq
        # Read to the end: those no longer undispatched are marked (by us or by another worker).
        self._parted -= parted - seen

    async def _mark_again(self, seqs: list[int]) -> bool:
        """Try again the mark of events this runtime has dispatched already; False if the
        store failed (said, and tried again at the next beat)."""
        if not seqs:
            return True
        try:
            await self.table.mark_dispatched(seqs)
        except StoreError as exc:
            log.warning("events could not be marked dispatched yet (%s); trying again later", exc)
            return False
        return True


def triggers_of(wf: Workflow) -> tuple[Any, ...]:
    return wf.triggers


def listens_of(registry: Registry) -> dict[str, list[str]]:
    """Event name -> the workflows of ``registry`` that it triggers or cancels, sorted."""
    out: dict[str, set[str]] = {}
    for wf in registry.newest():
        for entry in (*triggers_of(wf), *cancel_entries(wf)):
            out.setdefault(entry.event, set()).add(wf.name)
    return {name: sorted(wfs) for name, wfs in sorted(out.items())}


def _fires(wf: Workflow, trigger: Any, event: Event) -> bool:
    try:
        return bool(trigger.fires(event))
    except Exception as exc:
        log.error(
            "the where= of %r on workflow %r raised %s: %s; event %s does not start it",
            trigger,
            wf.name,
            type(exc).__name__,
            exc,
            event.seq,
        )
        return False
