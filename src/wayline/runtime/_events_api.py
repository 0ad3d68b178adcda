"""The events part of `Runtime`'s public API: ``send_event``, ``send_events``, ``list_events``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from . import _checks as check
from ._events import Events, EventSent, as_event
from ._triggers import Event


class EventsApi:
    """Mixed into `Runtime`: it sets ``_events``."""

    _events: Events

    async def send_event(
        self,
        name: str,
        data: Any = None,
        *,
        id: str | None = None,
        ts: float | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> EventSent:
        """Send event ``name`` with ``data``: it is committed before this returns, then
        starts the runs of the workflows whose ``triggers=[on_event(name, where=...)]`` fire
        (run ids ``"<workflow>@event:<seq>"``, the `Event` as input, ``metadata`` as their
        metadata) and wakes the runs waiting for it in ``ctx.wait_for_event``.

        An ``id`` seen within the runtime's ``event_dedup_window`` (24 hours by default)
        makes this a duplicate: nothing is stored or started, and ``duplicate`` says so.
        Without an ``id`` one is made up (no deduplication).

        Raises:
            InvalidArgumentError: ``name`` or ``id`` is not a short printable string, ``ts``
                not a number.
            PayloadError: ``data`` is not storable data.
            MetadataError: ``metadata`` holds something other than str keys and scalars.
        """
        prepared = self._events.prepare("rt.send_event", name, data, id, ts, metadata)
        return (await self._events.send([prepared]))[0]

    async def send_events(self, events: Sequence[Event]) -> list[EventSent]:
        """Send several `Event`s in one transaction (``Event(name=..., data=..., id=...)``;
        ``ts`` 0 means now); one `EventSent` each, in order. See `send_event`.

        Raises:
            InvalidArgumentError: an item is not an `Event`, or has a bad name or id.
            PayloadError: an event's data is not storable.
        """
        if not isinstance(events, Sequence) or not all(isinstance(e, Event) for e in events):
            check.refuse("rt.send_events", "events", f"must be a list of Event(name=..., data=...), got {events!r}")
        prepared = [
            self._events.prepare("rt.send_events", e.name, e.data, e.id or None, e.ts or None, e.metadata)
            for e in events
        ]
        return await self._events.send(prepared) if prepared else []

    async def list_events(
        self, *, name: str | None = None, after: int = 0, limit: int = 100, newest_first: bool = False
    ) -> list[Event]:
        """Accepted events (of ``name``) with ``seq`` above ``after``, oldest first (or newest
        first), at most ``limit``.

        Raises:
            InvalidArgumentError: an argument of the wrong type.
        """
        call = "rt.list_events"
        check.name(call, "name", name, optional=True)
        check.count(call, "after", after, optional=False)
        check.count(call, "limit", limit, optional=False)
        check.flag(call, "newest_first", newest_first)
        records = await self._events.table.listing(name=name, after=after, limit=limit, newest_first=newest_first)
        return [as_event(r) for r in records]
