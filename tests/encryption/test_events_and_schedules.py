"""Event data (``rt.send_event``) and schedule inputs at rest: a `Secret` in them is encrypted,
and with ``encrypt_payloads=True`` the whole data or input is; the runs they reach get the
values back. The database files (SQLite and its WAL, PostgreSQL's rows) are searched for the
plaintext; a ciphertext moved to another event is refused precisely."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from _support import idle, parked
from encryption._at_rest import MAGIC, stored
from wayline import Event, RunContext, Secret, activity, on_event, open_runtime, workflow
from wayline.errors import EncryptionKeyError, SecretDecryptError
from wayline.persistence import RunStatus
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio

KEY = bytes(range(32))
CARD = "card-PLAINTEXT-5c1e"
ADDRESS = "7 Open Lane"  # not a secret: encrypted only with encrypt_payloads
SEEN: list[Any] = []
WAYLINE = Path(sys.executable).with_name("wayline")


@activity(name="charge")
async def charge(card: Secret[str], where: str) -> int:
    SEEN.append((card.reveal(), where))
    return len(card.reveal())


@workflow(name="on_paid", triggers=[on_event("order/paid")])
async def on_paid(ctx: RunContext, event: Event) -> int:
    return await ctx.run(charge, event.data["card"], event.data["address"])


@workflow(name="await_paid")
async def await_paid(ctx: RunContext, order: str) -> int:
    ev = await ctx.wait_for_event("order/paid", match={"order": order})
    return await ctx.run(charge, ev.data["card"], ev.data["address"])


@workflow(name="billed")
async def billed(ctx: RunContext, bill: dict[str, Any]) -> int:
    return await ctx.run(charge, bill["card"], bill["address"])


def paid(order: str) -> dict[str, Any]:
    return {"order": order, "card": Secret(CARD), "address": ADDRESS}


@pytest.mark.parametrize("payloads", [False, True])
async def test_event_data_is_encrypted_at_rest_and_reaches_its_runs(db: str, payloads: bool) -> None:
    SEEN.clear()
    clock = VirtualClock()
    async with open_runtime(
        db, workflows=[on_paid, await_paid], clock=clock, encryption_key=KEY, encrypt_payloads=payloads
    ) as rt:
        waiting = await rt.start(await_paid, "o-1", run_id="w1")
        await parked(rt)
        sent = await rt.send_event("order/paid", paid("o-1"), id="pay-1", metadata={"corr": "k-1"})
        assert await waiting.result() == len(CARD)
        (started,) = sent.run_ids
        assert await rt.get_handle(started).result() == len(CARD)
        assert SEEN == [(CARD, ADDRESS)] * 2
        # Read back through the store, decrypted and checked against the event.
        (listed,) = await rt.list_events(name="order/paid")
        assert listed.data == {"order": "o-1", "card": Secret(CARD), "address": ADDRESS}
        assert listed.metadata == {"corr": "k-1"} and CARD not in repr(listed)
        at_rest = await stored(db)
    # The Secret always; with encrypt_payloads the whole data too (the address).
    assert CARD.encode() not in at_rest and MAGIC in at_rest
    assert (ADDRESS.encode() in at_rest) is not payloads

    # The CLI (a client, here with the key) lists the event with its secret masked.
    env = {**os.environ, "WAYLINE_ENCRYPTION_KEY": KEY.hex()}
    shown = ""
    for fmt in ((), ("--json",)):
        proc = subprocess.run(  # noqa: ASYNC221 (the runtime is closed: nothing to block)
            [str(WAYLINE), "events", "list", *fmt, "--db", db], capture_output=True, text=True, env=env, timeout=60
        )
        assert proc.returncode == 0, proc.stderr
        shown += proc.stdout + proc.stderr
    assert "order/paid" in shown and "***" in shown and "PLAINTEXT" not in shown


async def test_a_secret_in_event_data_reaches_its_runs_on_the_memory_store() -> None:
    SEEN.clear()
    async with open_runtime(
        ":memory:", workflows=[on_paid, await_paid], clock=VirtualClock(), encryption_key=KEY
    ) as rt:
        waiting = await rt.start(await_paid, "o-3", run_id="w3")
        await parked(rt)
        sent = await rt.send_event("order/paid", paid("o-3"), id="pay-3")
        assert await waiting.result() == len(CARD)
        assert await rt.get_handle(sent.run_ids[0]).result() == len(CARD)
        assert SEEN == [(CARD, ADDRESS)] * 2
        (listed,) = await rt.list_events()
        assert listed.data["card"].reveal() == CARD


async def test_a_secret_in_event_data_without_a_key_is_refused_and_nothing_is_stored(db: str) -> None:
    async with open_runtime(db, workflows=[on_paid], clock=VirtualClock()) as rt:
        with pytest.raises(EncryptionKeyError, match=r"data of event 'order/paid' \(id 'pay-9'\).*encryption_key"):
            await rt.send_event("order/paid", paid("o-9"), id="pay-9")
        assert await rt.list_events() == []
        assert await rt.list_runs() == []


@pytest.mark.parametrize("payloads", [False, True])
async def test_a_schedule_input_is_encrypted_at_rest_and_reaches_its_runs(db: str, payloads: bool) -> None:
    SEEN.clear()
    clock = VirtualClock()
    async with open_runtime(db, workflows=[billed], clock=clock, encryption_key=KEY, encrypt_payloads=payloads) as rt:
        handle = await rt.create_schedule("monthly", billed, {"card": Secret(CARD), "address": ADDRESS}, every=60)
        info = await handle.describe()
        assert info.input == {"card": Secret(CARD), "address": ADDRESS} and CARD not in repr(info)
        await clock.sleep(121)
        await idle(rt)
        runs = await rt.list_runs(workflow="billed", status=RunStatus.SUCCEEDED)
        assert len(runs) == 2
        assert SEEN == [(CARD, ADDRESS)] * 2
        at_rest = await stored(db)
    assert CARD.encode() not in at_rest and MAGIC in at_rest
    assert (ADDRESS.encode() in at_rest) is not payloads


async def test_event_data_encrypted_whole_needs_its_key_to_be_read(tmp_path: Path) -> None:
    db = str(tmp_path / "wayline.db")
    async with open_runtime(db, clock=VirtualClock(), encryption_key=KEY, encrypt_payloads=True) as rt:
        await rt.send_event("order/paid", {"address": ADDRESS}, id="pay-2")
    async with open_runtime(db, clock=VirtualClock(), worker=False) as rt:
        with pytest.raises(EncryptionKeyError, match=r"data of event 'order/paid' \(id 'pay-2'\).*encrypted with key"):
            await rt.list_events()
    async with open_runtime(db, clock=VirtualClock(), encryption_key=KEY, worker=False) as rt:
        assert [e.data for e in await rt.list_events()] == [{"address": ADDRESS}]


async def test_event_data_moved_to_another_event_is_refused(tmp_path: Path) -> None:
    db = str(tmp_path / "wayline.db")
    async with open_runtime(db, clock=VirtualClock(), encryption_key=KEY) as rt:
        await rt.send_event("order/paid", {"card": Secret(CARD)}, id="a")
        await rt.send_event("order/paid", {"card": Secret("other")}, id="b")
    with sqlite3.connect(db) as conn:
        (body,) = conn.execute("SELECT body FROM events WHERE event_id = 'a'").fetchone()
        conn.execute("UPDATE events SET body = ? WHERE event_id = 'b'", (body,))
    async with open_runtime(db, clock=VirtualClock(), encryption_key=KEY, worker=False) as rt:
        with pytest.raises(SecretDecryptError, match=r"data of event 'order/paid' \(id 'b'\)\['card'\]"):
            await rt.list_events()


async def test_an_undispatched_event_under_a_missing_key_waits_for_it_and_is_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = str(tmp_path / "wayline.db")
    # A client sends it: it stays undispatched until an owning runtime dispatches it.
    async with open_runtime(db, workflows=[on_paid], clock=VirtualClock(), encryption_key=KEY, worker=False) as rt:
        await rt.send_event("order/paid", paid("o-5"), id="pay-5")
    clock = VirtualClock()
    async with open_runtime(db, workflows=[on_paid], clock=clock, encryption_key=bytes(range(1, 33))) as rt:
        for _ in range(5):
            await clock.sleep(10)  # several beats of the poller
        assert await rt.list_runs() == []
    said_here = "undispatched event 1 ('order/paid', id 'pay-5') cannot be read"
    said = [r for r in caplog.records if said_here in r.getMessage()]
    assert len(said) == 1 and "(id 'pay-5')['card']" in said[0].getMessage()
    assert "stays in the database as it is" in said[0].getMessage()
    SEEN.clear()
    clock = VirtualClock()
    async with open_runtime(db, workflows=[on_paid], clock=clock, encryption_key=KEY) as rt:
        await clock.sleep(10)
        (run,) = await rt.list_runs()
        assert await rt.get_handle(run.run_id).result() == len(CARD)
    assert SEEN == [(CARD, ADDRESS)]
