"""Throttle and debounce: a pace per tenant for calls to a rate-limited API, and one reindex
per burst of edits to a document, with the last edit.

    python examples/throttle_and_debounce.py

On a SQLite file in a temporary directory, with a virtual clock (the waits pass at once).
What it prints is checked by tests/events/test_pacing_example.py.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from wayline import Debounce, Event, RunContext, Throttle, activity, on_event, open_runtime, workflow
from wayline.testing import VirtualClock

STARTED: list[str] = []


@activity(name="note")
async def note(line: str) -> None:
    STARTED.append(line)


# At most 2 calls per 10 s per tenant, spread 5 s apart; the rest wait QUEUED, durably.
@workflow(name="call_api", throttle=Throttle(2, 10, key=lambda job: job["tenant"]))
async def call_api(ctx: RunContext, job: dict[str, Any]) -> None:
    await ctx.run(note, f"call {job['tenant']}/{job['n']} at +{ctx.now() - T0:g}s")


# One reindex per document once its edits have been quiet for 30 s (at most 120 s after the
# first edit), with the last edit.
@workflow(
    name="reindex",
    triggers=[on_event("doc/edited")],
    debounce=Debounce(30, key=lambda e: e.data["doc"], max_wait=120),
)
async def reindex(ctx: RunContext, event: Event) -> None:
    await ctx.run(note, f"reindex {event.data['doc']} rev {event.data['rev']} at +{ctx.now() - T0:g}s")


T0 = VirtualClock().time()


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        clock = VirtualClock(T0)
        async with open_runtime(str(Path(tmp) / "app.db"), workflows=[call_api, reindex], clock=clock) as rt:
            calls = [await rt.start(call_api, {"tenant": "acme", "n": n}) for n in range(4)]
            print((await rt.describe(calls[3].run_id)).waiting_for[0].split(";")[0])
            edits = []
            for rev in range(1, 4):  # three edits, 5 s apart: one run
                edits.append(await rt.send_event("doc/edited", {"doc": "readme", "rev": rev}))
                await clock.sleep(5)
            print("one run for the burst:", len({e.run_ids[0] for e in edits}) == 1)
            for handle in [*calls, rt.get_handle(edits[0].run_ids[0])]:
                await handle.result()
        print("\n".join(STARTED))


if __name__ == "__main__":
    asyncio.run(main())
