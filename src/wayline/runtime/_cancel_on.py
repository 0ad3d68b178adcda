"""``@workflow(cancel_on=[on_event(name, match=...)])``: the runs an event cancels.

Matching is data, so that it is indexed rather than evaluated run by run. When a run of such
a workflow is created, `cancel_metadata` takes, for each ``cancel_on`` entry, the values its
``match`` reads from the run's input (for a run an event started: that event's data): the
run's *cancel keys*, carried in its metadata (``wayline.cancel_keys``) so that the store
indexes them in the transaction that creates the run, and drops them in the one that ends it
(`wayline.persistence._cancel_keys`). An entry whose path the input does not have (or whose function returns None) gives
no key: that event cannot cancel the run. When an event is dispatched, `Canceller` computes,
for each entry of each workflow listening to its name whose ``where`` lets it through, the
event's values at the entry's paths, and finds the runs with those keys in one indexed
query. Each is cancelled as ``rt.cancel`` does it: through its durable inbox, so a
passivated run, a QUEUED one (it ends CANCELLED, never started) or one another worker owns
gets it the same way.

Dispatch is idempotent (a second cancel of an ended run finds it ended), and it is the same
dispatch that a crash leaves to `Events.poll_once`, so a cancel happens even if the process
dies right after ``send_event`` returned. An event never cancels a run it started itself (a
dispatch repeated after a crash would otherwise find it), and an event accepted before a run
was created does not cancel it, even when its dispatch comes later (a client's event, or one
a crash left undispatched): the run's creation time is compared with the event's acceptance
time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from .._errors import FlowSpecError, RunAlreadyFinishedError, RunNotFoundError
from ..actors import Clock
from ..persistence import (
    CANCEL_KEYS_ENTRY,
    PATH_NOT_FOUND,
    CancelCandidate,
    CancelKey,
    CancelKeyStore,
    EventRecord,
    Store,
    cancel_candidate,
    cancel_key,
    encode_cancel_keys,
    path_value,
)
from ._inbox import Mailboxes, cancel
from ._triggers import Event, EventTrigger
from ._workflows import Registry, Workflow

log = logging.getLogger("wayline.events")

#: The largest cancel key (paths and values, as JSON): an index row must stay small (and
#: PostgreSQL refuses index rows above about 2.7 kB).
MAX_KEY_SIZE = 1024


def cancel_entries(wf: Workflow | None) -> tuple[EventTrigger, ...]:
    """``wf``'s ``cancel_on`` entries (none for an unknown workflow)."""
    entries: tuple[EventTrigger, ...] = getattr(wf, "cancel_on", ())
    return entries


def source_of(input: Any, subject: Any) -> Any:
    """What ``match`` reads in a run's input: the data of the event that started it, or
    the input itself."""
    for given in (subject, input):
        if isinstance(given, Event):
            return given.data
    return input


def keys_of(wf: Workflow, source: Any, run_id: str) -> list[CancelKey]:
    """The cancel keys of a run of ``wf`` whose input (or event data) is ``source``.

    Raises:
        FlowSpecError: a ``match`` function raised for this input, or the values are too
            large to index.
    """
    keys = []
    for entry in cancel_entries(wf):
        wanted: dict[str, Any] = {}
        for path, source_path in (entry.match or {}).items():
            value = _value(wf, entry, path, source_path, source, run_id)
            if value is PATH_NOT_FOUND:
                break
            wanted[path] = value
        else:
            key = cancel_key(entry.event, wanted)
            if len(key.paths) + len(key.vals) > MAX_KEY_SIZE:
                raise FlowSpecError(
                    wf.name,
                    f"cancel_on {entry!r}: the values its match reads from this input take "
                    f"{len(key.vals)} characters as JSON; at most {MAX_KEY_SIZE} with the paths "
                    "(match on ids, not on whole documents)",
                    run_id=run_id,
                )
            keys.append(key)
    return keys


def _value(
    wf: Workflow, entry: EventTrigger, path: str, source_path: str | Callable[[Any], Any], source: Any, run_id: str
) -> Any:
    if isinstance(source_path, str):
        return path_value(source, source_path)
    try:
        value = source_path(source)
    except Exception as exc:
        raise FlowSpecError(
            wf.name,
            f"the match= function for {path!r} of cancel_on {entry!r} raised {type(exc).__name__}: {exc} "
            "(return None for an input that no such event should cancel)",
            run_id=run_id,
        ) from exc
    return PATH_NOT_FOUND if value is None else value


def cancel_metadata(wf: Workflow, input: Any, subject: Any, run_id: str) -> dict[str, str]:
    """The metadata entry that carries the cancel keys of a new run of ``wf`` (none if its
    workflow has no ``cancel_on``, or no entry applies to its input): the store indexes them
    from there in the transaction that creates the run.

    Raises:
        FlowSpecError: a ``match`` function raised for this input.
    """
    if not cancel_entries(wf):
        return {}
    keys = keys_of(wf, source_of(input, subject), run_id)
    return {CANCEL_KEYS_ENTRY: encode_cancel_keys(keys)} if keys else {}


class Canceller:
    """The cancelling side: which event names cancel runs here, and `cancel_for`."""

    def __init__(self, store: Store, clock: Clock, registry: Registry, runs: Mailboxes) -> None:
        self._store = store
        self._clock = clock
        self._runs = runs
        self._table: CancelKeyStore | None = getattr(store, "cancel_keys", None)
        # Event name -> (workflow, entry, the entry's event paths as the index has them).
        self._listening: dict[str, list[tuple[str, EventTrigger, str]]] = {}
        for wf in registry.newest():
            for entry in cancel_entries(wf):
                paths = cancel_key(entry.event, dict.fromkeys(entry.match or {})).paths
                self._listening.setdefault(entry.event, []).append((wf.name, entry, paths))

    @property
    def names(self) -> frozenset[str]:
        """The event names some ``cancel_on`` here listens to."""
        return frozenset(self._listening)

    def _candidates(self, record: EventRecord, event: Event) -> list[CancelCandidate]:
        found = []
        for workflow, entry, paths in self._listening.get(record.name, ()):
            try:
                if not entry.fires(event):
                    continue
            except Exception as exc:
                log.error(
                    "the where= of cancel_on %r on workflow %r raised %s: %s; event %s cancels none of its runs",
                    entry,
                    workflow,
                    type(exc).__name__,
                    exc,
                    record.seq,
                )
                continue
            offered = cancel_candidate(workflow, paths, record.data)
            if offered is not None:
                found.append(offered)
        return found

    async def cancel_for(self, record: EventRecord, event: Event) -> tuple[str, ...]:
        """Cancel the unfinished runs ``record`` matches; the ids of those it cancelled."""
        candidates = self._candidates(record, event)
        if not candidates or self._table is None:
            return ()
        run_ids = await self._table.cancel_targets(record.name, candidates)
        if not run_ids:
            return ()
        reason = f"cancelled by event {record.name!r} (id {record.event_id})"
        # Side by side (each waits until its run has taken the cancel in); a failure (the
        # store) stops the others and leaves the event undispatched, to be dispatched again.
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self._cancel(run_id, record, reason)) for run_id in run_ids]
        return tuple(run_id for run_id, task in zip(run_ids, tasks, strict=True) if task.result())

    async def _cancel(self, run_id: str, record: EventRecord, reason: str) -> bool:
        rec = await self._store.get_run(run_id)
        if rec is None or rec.status.finished:
            return False  # purged, or ended, since its keys were read
        if rec.created_at > record.accepted_at:
            return False  # created after the event was accepted: a late dispatch does not reach it
        if rec.metadata.get("wayline.event_id") == record.event_id and rec.created_at >= record.accepted_at:
            return False  # this event started it (an id reused after the dedup window is another event)
        try:
            await cancel(self._store, self._clock, self._runs, run_id, reason)
        except (RunAlreadyFinishedError, RunNotFoundError):
            return False  # ended (or purged) meanwhile
        return True
