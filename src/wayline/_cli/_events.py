"""``wayline events send|list``.

The database is opened as a client: ``send`` commits the event before it returns, and the
worker that owns the database starts the runs its triggers name and wakes the runs waiting
for it at its next look at the store (within a second). Runs waiting for it in this
database's inbox are woken at once.
"""

from __future__ import annotations

from typing import Any

from ..runtime import Event
from . import _output as out
from ._args import parse_json, parse_where
from ._commands import Options, _client
from ._errors import OK
from ._time import iso


def _doc(event: Event) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "name": event.name,
        "id": event.id,
        "ts": iso(event.ts),
        "data": out.plain(event.data),
        "metadata": event.metadata,
    }


async def events_send(opts: Options, name: str, data: str, event_id: str | None, metadata: list[str]) -> int:
    payload = parse_json(data, "--data")
    labels = parse_where(metadata) if metadata else None
    async with _client(opts) as rt:
        sent = await rt.send_event(name, payload, id=event_id, metadata=labels)
    if opts.json:
        out.emit_json({"id": sent.id, "seq": sent.seq, "duplicate": sent.duplicate})
        return OK
    if sent.duplicate:
        print(f"event {sent.id} is a duplicate of event #{sent.seq}: nothing was stored or started")
    else:
        print(
            f"event #{sent.seq} {name} accepted (id {sent.id}); the worker starts the runs it triggers "
            "and cancels the runs its cancel_on matches"
        )
    return OK


async def events_list(opts: Options, name: str | None, limit: int) -> int:
    async with _client(opts) as rt:
        events = await rt.list_events(name=name, limit=limit, newest_first=True)
    events.reverse()  # the most recent ones, oldest first
    if opts.json:
        out.emit_json([_doc(e) for e in events])
        return OK
    if not events:
        print("no events")
        return OK
    rows = [(str(e.seq), e.name, e.id, iso(e.ts) or "-", out.compact(e.data, 60)) for e in events]
    print(out.table(("SEQ", "NAME", "ID", "TS", "DATA"), rows))
    return OK
