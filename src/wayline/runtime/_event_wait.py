"""The step behind ``ctx.wait_for_event``: look for the event in the events table.

The events table, not the wake-up, is the truth: the step indexes the run's wait (so that
the dispatcher wakes it when a matching event arrives) and then reads the events of that
name accepted since the run was created, taking the oldest that matches and that no earlier
wait of this run took. An event committed while the step runs is found by the read (its
index row was committed first) or wakes the run (the dispatcher finds the index row); a
wake-up that finds nothing new is harmless. The step is journaled, so a replay returns the
same event.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import msgspec

from .._errors import EventTimeoutError, SignalTimeoutError, StoreError
from ..persistence import EVENT_WAKE as WAKE, EventStore, event_wait_key, matches_event
from ._commands import Step, WaitSignal
from ._definitions import ActivityDef, RetryPolicy
from ._triggers import Event

#: Events read per page while looking for a match.
PAGE = 200

#: Store errors are retried as any step's; the wait goes on once the store answers.
RETRY = RetryPolicy(max_attempts=10, interval=0.05, backoff_rate=2.0, max_delay=2.0)


def find_step(table: EventStore | None, now: Any) -> ActivityDef[..., dict[str, Any]]:
    """The journaled step ``wayline.wait_for_event`` of a run, on the store's events table.

    Its result: ``{"now": time of the look, "event": the event found as a dict, or None}``.
    With ``last=True`` (the wait timed out) it removes the run's index row and looks once
    more; otherwise it indexes the wait before looking, and removes the row once it finds one.
    """

    async def find(
        run_id: str,
        since: float,
        name: str,
        paths: str,
        values: str,
        match: Mapping[str, Any],
        taken: Collection[int],
        last: bool = False,
    ) -> dict[str, Any]:
        if table is None:
            raise StoreError("this run's store keeps no events: ctx.wait_for_event needs a store that does")
        if not last:
            await table.add_wait(run_id, name, paths, values)
        found = await _oldest(table, name, since, match, set(taken))
        if found is not None or last:
            await table.remove_wait(run_id, name, paths, values)
        return {"now": now(), "event": found}

    return ActivityDef(find, name="wayline.wait_for_event", retry=RETRY, timeout=None)


async def _oldest(
    table: EventStore, name: str, since: float, match: Mapping[str, Any], taken: set[int]
) -> dict[str, Any] | None:
    after = 0
    while True:
        page = await table.find(name, since=since, after=after, limit=PAGE)
        for rec in page:
            if rec.seq not in taken and matches_event(rec.data, match):
                return {
                    "name": rec.name,
                    "data": rec.data,
                    "id": rec.event_id,
                    "ts": rec.ts,
                    "seq": rec.seq,
                    "metadata": rec.metadata,
                }
        if len(page) < PAGE:
            return None
        after = page[-1].seq


async def wait(
    table: EventStore | None,
    now: Any,
    *,
    run_id: str,
    since: float,
    taken: list[int],
    name: str,
    match: Mapping[str, Any],
    timeout: float | None,  # noqa: ASYNC109 - a durable deadline, not asyncio's
) -> Event:
    """``ctx.wait_for_event`` (see there): look, then sleep until woken or timed out, and look again."""
    step = find_step(table, now)
    paths, values = event_wait_key(match)
    args = (run_id, since, name, paths, values, dict(match))
    deadline: float | None = None
    while True:
        found = await Step(step, (*args, list(taken)), {})
        if deadline is None and timeout is not None:
            deadline = found["now"] + timeout
        if found["event"] is None:
            remaining = None if deadline is None else max(0.0, deadline - found["now"])
            try:
                # The wake-up carries the event, and its index row is gone: it answers
                # this wait unless an earlier wait took it or it matches another wait of
                # the same name (then look again, which indexes this wait anew).
                woke = await WaitSignal(WAKE + name, remaining)
                if _answers(woke, match, taken):
                    found = {"now": None, "event": woke}
                else:
                    continue
            except SignalTimeoutError:
                found = await Step(step, (*args, list(taken), True), {})
                if found["event"] is None:
                    raise EventTimeoutError(run_id, name, match, timeout) from None
        event = msgspec.convert(found["event"], Event)
        taken.append(event.seq)
        return event


def _answers(payload: Any, match: Mapping[str, Any], taken: list[int]) -> bool:
    return (
        isinstance(payload, dict)
        and isinstance(payload.get("seq"), int)
        and payload["seq"] not in taken
        and matches_event(payload.get("data"), match)
    )
