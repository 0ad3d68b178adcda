"""Undispatched events, some under a key the dispatching runtime lacks: those are passed over
(each said once, by seq, name and id, naming the key) and stay for a runtime with the key;
the events after them are dispatched, however many unreadable ones come first."""

from __future__ import annotations

import logging
from typing import Any

import pytest

import wayline.runtime._events as events_module
from wayline import Event, RunContext, Secret, activity, on_event, open_runtime, workflow
from wayline.persistence import RunStatus
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio

OLD = "old:" + bytes(range(32)).hex()
OTHER = "other:" + bytes(range(50, 82)).hex()
CHARGED: list[str] = []


@activity(name="charge_token")
async def charge_token(token: Secret[str]) -> int:
    CHARGED.append(token.reveal())
    return len(token.reveal())


@workflow(name="on_card", triggers=[on_event("card/charged")])
async def on_card(ctx: RunContext, event: Event) -> int:
    return await ctx.run(charge_token, event.data["token"])


async def _send(db: str, key: str, payloads: bool, ids: list[str]) -> None:
    # Sent by a client: stored undispatched, for an owning runtime's beat.
    async with open_runtime(
        db, workflows=[on_card], clock=VirtualClock(), encryption_key=key, encrypt_payloads=payloads, worker=False
    ) as rt:
        for event_id in ids:
            await rt.send_event("card/charged", {"token": Secret(f"tok-{event_id}")}, id=event_id)


@pytest.mark.parametrize("payloads", [False, True])
async def test_an_unreadable_event_does_not_hold_up_the_others(
    db: str, payloads: bool, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pages of 2: the three unreadable events fill the first page and more.
    monkeypatch.setattr(events_module, "POLL_PAGE", 2)
    await _send(db, OLD, payloads, ["o1", "o2", "o3"])
    await _send(db, OTHER, payloads, ["n1", "n2"])
    await _send(db, OLD, payloads, ["o4"])
    await _send(db, OTHER, payloads, ["n3"])

    CHARGED.clear()
    caplog.set_level(logging.ERROR, logger="wayline.events")
    clock = VirtualClock()
    async with open_runtime(
        db, workflows=[on_card], clock=clock, encryption_key=OTHER, encrypt_payloads=payloads
    ) as rt:
        for _ in range(5):
            await clock.sleep(10)  # several beats of the poller
        runs = await rt.list_runs(workflow="on_card")
        assert len(runs) == 3
        for run in runs:
            assert await rt.get_handle(run.run_id).result() == len("tok-n1")
        assert sorted(CHARGED) == ["tok-n1", "tok-n2", "tok-n3"]

    said = [r.getMessage() for r in caplog.records if r.name == "wayline.events"]
    assert len(said) == 4, said  # once each, not at every beat
    for seq, event_id in ((1, "o1"), (2, "o2"), (3, "o3"), (6, "o4")):
        (line,) = [m for m in said if m.startswith(f"undispatched event {seq} ")]
        assert f"('card/charged', id '{event_id}') cannot be read here" in line and "key 'old'" in line

    # A runtime with the old key dispatches the four left.
    CHARGED.clear()
    clock = VirtualClock()
    keys: dict[str, Any] = {"encryption_key": OLD, "encryption_keys": [OTHER], "encrypt_payloads": payloads}
    async with open_runtime(db, workflows=[on_card], clock=clock, **keys) as rt:
        await clock.sleep(10)
        runs = await rt.list_runs(workflow="on_card")
        assert len(runs) == 7
        for run in runs:
            await rt.get_handle(run.run_id).result()
        assert sorted(CHARGED) == ["tok-o1", "tok-o2", "tok-o3", "tok-o4"]
        assert len(await rt.list_runs(workflow="on_card", status=RunStatus.SUCCEEDED)) == 7
