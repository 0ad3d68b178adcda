"""Events: accepted durably, deduplicated by id, starting the runs of their triggers."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest

from _support import idle
from wayline import (
    Event,
    PayloadError,
    RunContext,
    RunStatus,
    StateMachine,
    on_event,
    open_runtime,
    workflow,
)
from wayline.errors import InvalidArgumentError
from wayline.persistence import RunStarted
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio


@workflow(name="fulfil", triggers=[on_event("order/created", where=lambda e: e.data["total"] > 0)])
async def fulfil(ctx: RunContext, event: Event) -> dict[str, Any]:
    return {"customer": event.data["customer"], "seq": event.seq, "id": event.id, "corr": ctx.metadata.get("corr")}


@workflow(name="audit", triggers=[on_event("order/created"), on_event("order/cancelled")])
async def audit(ctx: RunContext, event: dict[str, Any]) -> str:
    return str(event["name"])


async def test_an_event_starts_each_triggered_workflow_with_the_event_as_input(db: str) -> None:
    async with open_runtime(db, workflows=[fulfil, audit], clock=VirtualClock()) as rt:
        sent = await rt.send_event("order/created", {"customer": "c1", "total": 9}, id="evt-1", metadata={"corr": "k"})
        assert not sent.duplicate and sent.id == "evt-1"
        assert sorted(sent.run_ids) == sorted([f"fulfil@event:{sent.seq}", f"audit@event:{sent.seq}"])
        out = await rt.get_handle(f"fulfil@event:{sent.seq}").result()
        assert out == {"customer": "c1", "seq": sent.seq, "id": "evt-1", "corr": "k"}
        assert await rt.get_handle(f"audit@event:{sent.seq}").result() == "order/created"
        info = await rt.describe(f"fulfil@event:{sent.seq}")
        assert info.metadata["corr"] == "k"  # the event's metadata is the run's
        assert info.metadata["wayline.event_id"] == "evt-1"
        history = [e async for e in rt.history(f"fulfil@event:{sent.seq}")]
        started = history[0]
        assert isinstance(started, RunStarted) and started.input["data"] == {"customer": "c1", "total": 9}
        # The run is found by the event's correlation id.
        found = await rt.list_runs(metadata={"corr": "k"})
        assert {r.run_id for r in found} == set(sent.run_ids)


async def test_where_filters_and_other_names_start_nothing(db: str) -> None:
    async with open_runtime(db, workflows=[fulfil, audit], clock=VirtualClock()) as rt:
        free = await rt.send_event("order/created", {"customer": "c1", "total": 0})
        assert free.run_ids == (f"audit@event:{free.seq}",)  # fulfil's where= is false
        other = await rt.send_event("order/shipped", {"customer": "c1"})
        assert other.run_ids == ()
        cancelled = await rt.send_event("order/cancelled", {})
        assert cancelled.run_ids == (f"audit@event:{cancelled.seq}",)
        await idle(rt)
        assert len(await rt.list_runs(status=RunStatus.SUCCEEDED)) == 2


async def test_a_repeated_id_within_the_window_starts_nothing_and_says_so(db: str) -> None:
    clock = VirtualClock()
    async with open_runtime(db, workflows=[audit], clock=clock, event_dedup_window=3600) as rt:
        first = await rt.send_event("order/created", {"n": 1}, id="dup")
        again = await rt.send_event("order/created", {"n": 2}, id="dup")
        assert again.duplicate and again.run_ids == () and again.seq == first.seq
        assert [e.data for e in await rt.list_events()] == [{"n": 1}]
        await clock.sleep(3601)  # past the window: the id may be used again
        later = await rt.send_event("order/created", {"n": 3}, id="dup")
        assert not later.duplicate and later.seq > first.seq and len(later.run_ids) == 1


async def test_send_events_commits_a_batch_and_dedups_inside_it(db: str) -> None:
    async with open_runtime(db, workflows=[audit], clock=VirtualClock()) as rt:
        sent = await rt.send_events(
            [
                Event(name="order/created", data={"i": 0}, id="a"),
                Event(name="order/created", data={"i": 1}, id="b"),
                Event(name="order/created", data={"i": 2}, id="a"),
            ]
        )
        assert [s.duplicate for s in sent] == [False, False, True]
        assert sent[2].seq == sent[0].seq
        listed = await rt.list_events(name="order/created")
        assert [(e.id, e.data) for e in listed] == [("a", {"i": 0}), ("b", {"i": 1})]
        assert [e.id for e in await rt.list_events(newest_first=True, limit=1)] == ["b"]
        for s in sent[:2]:
            assert await rt.get_handle(s.run_ids[0]).result() == "order/created"


async def test_bad_events_are_refused_before_anything_is_stored() -> None:
    async with open_runtime(":memory:", workflows=[audit], clock=VirtualClock()) as rt:
        with pytest.raises(InvalidArgumentError, match=r"rt\.send_event: name"):
            await rt.send_event("", {})
        with pytest.raises(InvalidArgumentError, match=r"rt\.send_event: id"):
            await rt.send_event("x", {}, id=5)  # type: ignore[arg-type]
        with pytest.raises(PayloadError, match="the data of event 'x'"):
            await rt.send_event("x", {"f": object()})
        with pytest.raises(InvalidArgumentError, match=r"rt\.send_events: events"):
            await rt.send_events([{"name": "x"}])  # type: ignore[list-item]
        assert await rt.list_events() == []
    with pytest.raises(InvalidArgumentError, match="on_event: where"):

        async def predicate(e: Event) -> bool:
            return True

        on_event("x", where=predicate)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="triggers"):
        workflow(name="w", triggers=on_event("x"))(_body)  # type: ignore[arg-type]


async def _body(ctx: RunContext) -> None:
    return None


MACHINE = {
    "StartAt": "Echo",
    "States": {"Echo": {"Type": "Pass", "Parameters": {"who.$": "$.data.who", "seq.$": "$.seq"}, "End": True}},
}


async def test_a_state_machine_is_triggered_the_same_way(db: str) -> None:
    sm = StateMachine(MACHINE, name="greeter", triggers=[on_event("user/joined")])
    async with open_runtime(db, workflows=[sm], clock=VirtualClock()) as rt:
        sent = await rt.send_event("user/joined", {"who": "ana"})
        assert sent.run_ids == (f"greeter@event:{sent.seq}",)
        assert await rt.get_handle(sent.run_ids[0]).result() == {"who": "ana", "seq": sent.seq}


async def test_a_client_leaves_triggers_to_the_owner_which_starts_them(tmp_path: Any) -> None:
    db = str(tmp_path / "w.db")
    async with open_runtime(db, workflows=[audit], clock=VirtualClock(), worker=False) as client:
        sent = await client.send_event("order/created", {})
        assert sent.run_ids == ()  # a client starts nothing; the event waits for an owner
    async with open_runtime(db, workflows=[audit], clock=VirtualClock()) as rt:
        with anyio.fail_after(10):  # the end of recovery, on the inbox poller's first beat
            while await rt.store.get_run(f"audit@event:{sent.seq}") is None:  # noqa: ASYNC110 - a row
                await asyncio.sleep(0)
        assert await rt.get_handle(f"audit@event:{sent.seq}").result() == "order/created"
        with anyio.fail_after(10):  # then marked dispatched
            while await rt.store.events.undispatched():  # type: ignore[attr-defined]  # noqa: ASYNC110
                await asyncio.sleep(0)
