"""Nothing secret at rest or on show: the database files (SQLite and its WAL, PostgreSQL's
rows), the log output, the exported spans and the CLI's output are searched for the plaintext;
``encrypt_payloads=True`` encrypts every stored value; a tampered, moved or wrongly keyed
ciphertext is refused precisely and the row is left as it was."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from encryption._at_rest import MAGIC, stored
from traces._spans import tracing
from wayline import RunContext, Secret, activity, open_runtime, workflow
from wayline.errors import EncryptionKeyError, SecretDecryptError
from wayline.persistence import RunStatus
from wayline.persistence._codec import decode_record, store_encode
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio

KEY = bytes(range(32))
OTHER = bytes(range(5, 37))
TOKEN = "tok-PLAINTEXT-91be"
WAYLINE = Path(sys.executable).with_name("wayline")


@activity(name="charge_card")
async def charge_card(card: Secret[str], amount: int) -> dict[str, Any]:
    logging.getLogger("app").info("charging %s for %s", card, amount)
    return {"charged": amount, "receipt": Secret("rcpt-" + card.reveal())}


@workflow(name="checkout")
async def checkout(ctx: RunContext, order: dict[str, Any]) -> dict[str, Any]:
    ctx.vars["card"] = order["card"]
    ctx.vars["note"] = order["note"]
    await ctx.wait_signal("confirm")
    out: dict[str, Any] = await ctx.run(charge_card, ctx.vars["card"], order["amount"])
    return {"amount": out["charged"], "receipt": out["receipt"], "note": order["note"]}


async def test_the_plaintext_is_nowhere_at_rest_nor_in_logs_spans_or_cli_output(
    db: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    provider, exporter = tracing()
    clock = VirtualClock()
    async with open_runtime(db, workflows=[checkout], clock=clock, encryption_key=KEY, tracer_provider=provider) as rt:
        await rt.start(checkout, {"card": Secret(TOKEN), "note": "visible-note", "amount": 5}, run_id="c1")
        await clock.sleep(0.001)
        mid = await stored(db)  # a run in flight: its secret is in the snapshot, encrypted
        await rt.signal("c1", "confirm", {"pin": Secret("PIN-PLAINTEXT-1234")})
        out = await rt.get_handle("c1").result()
        assert out["receipt"].reveal() == "rcpt-" + TOKEN
    at_rest = mid + await stored(db)
    assert MAGIC in at_rest  # the secrets are there, encrypted
    assert b"visible-note" in at_rest  # (and the search would find a plain value: the grep works)
    assert b"PLAINTEXT" not in at_rest
    logged = caplog.text + "".join(repr(r.args) for r in caplog.records)
    assert "charging Secret('***') for 5" in logged and "PLAINTEXT" not in logged
    spans = exporter.get_finished_spans()
    assert spans
    assert "PLAINTEXT" not in "".join(s.to_json() for s in spans)

    # The CLI, as a client with no key: it shows Secret('***'), never a value.
    cli_db = db
    env = {k: v for k, v in os.environ.items() if k != "WAYLINE_ENCRYPTION_KEY"}
    shown = ""
    for args in (("runs", "show", "c1"), ("runs", "history", "c1"), ("runs", "list")):
        for fmt in ((), ("--json",)):
            proc = subprocess.run(  # noqa: ASYNC221 (the runtime is closed: nothing to block)
                [str(WAYLINE), *args, *fmt, "--db", cli_db], capture_output=True, text=True, env=env, timeout=60
            )
            assert proc.returncode == 0, proc.stderr
            shown += proc.stdout + proc.stderr
    assert "Secret('***')" in shown and "PLAINTEXT" not in shown


@workflow(name="plainly")
async def plainly(ctx: RunContext, order: dict[str, Any]) -> dict[str, Any]:
    ctx.vars["address"] = order["address"]
    await ctx.wait_signal("go")
    receipt = await ctx.run(echo, order["address"])
    return {"receipt": receipt}


@activity(name="echo")
async def echo(value: str) -> str:
    return "receipt-for-" + value


ADDRESS = "12 PLAINTEXT Street"


async def test_encrypt_payloads_encrypts_every_stored_value(db: str) -> None:
    clock = VirtualClock()
    async with open_runtime(db, workflows=[plainly], clock=clock, encryption_key=KEY, encrypt_payloads=True) as rt:
        await rt.start(plainly, {"address": ADDRESS}, run_id="e1", metadata={"customer": "c-7"})
        await clock.sleep(0.001)
        assert (await rt.describe("e1")).vars == {"address": ADDRESS}
        mid = await stored(db)
        await rt.signal("e1", "go", "signal-PLAINTEXT-payload")
        assert await rt.get_handle("e1").result() == {"receipt": "receipt-for-" + ADDRESS}
        events = [e async for e in rt.history("e1")]
        assert any(getattr(e, "result", None) == "receipt-for-" + ADDRESS for e in events)
        # Metadata stays searchable: it is the index, not a payload.
        assert [r.run_id for r in await rt.list_runs(metadata={"customer": "c-7"})] == ["e1"]
    at_rest = mid + await stored(db)
    assert b"PLAINTEXT" not in at_rest and MAGIC in at_rest

    # Without the key: a precise error naming the run and the key, and nothing changed.
    before = await stored(db)
    async with open_runtime(db, workflows=[plainly], clock=VirtualClock(), worker=False) as rt:
        with pytest.raises(
            EncryptionKeyError, match=r"run 'e1'.*encrypted with key 'k[0-9a-f]{8}'.*Nothing was changed"
        ):
            await rt.describe("e1")
    # With another key under another id: the same.
    async with open_runtime(db, workflows=[plainly], clock=VirtualClock(), encryption_key=OTHER, worker=False) as rt:
        with pytest.raises(EncryptionKeyError, match="run 'e1'"):
            await rt.get_handle("e1").result()
    assert await stored(db) == before
    async with open_runtime(db, workflows=[plainly], clock=VirtualClock(), encryption_key=KEY, worker=False) as rt:
        assert await rt.get_handle("e1").result() == {"receipt": "receipt-for-" + ADDRESS}


async def test_a_run_without_its_key_waits_and_loses_nothing(db: str, caplog: pytest.LogCaptureFixture) -> None:
    """A runtime opened without the key leaves a run holding a Secret where it is (logged,
    and refused precisely when asked for); a client shows the secret sealed; with the key
    back the run goes on."""
    clock = VirtualClock()
    async with open_runtime(db, workflows=[checkout], clock=clock, encryption_key="k1:" + KEY.hex()) as rt:
        await rt.start(checkout, {"card": Secret(TOKEN), "note": "n", "amount": 1}, run_id="w1")
        await clock.sleep(0.001)
    before = await _read_snapshot(db, "w1")
    clock = VirtualClock()
    async with open_runtime(db, workflows=[checkout], clock=clock, encryption_key="k2:" + OTHER.hex()) as rt:
        await clock.sleep(0.001)
        assert "run 'w1'" in caplog.text and "key 'k1'" in caplog.text
        with pytest.raises(EncryptionKeyError, match=r"run 'w1'.*key 'k1'.*the run waits") as info:
            await rt.describe("w1")
        assert info.value.run_id == "w1" and info.value.key_id == "k1"
        with pytest.raises(EncryptionKeyError, match="key 'k1'"):
            await rt.signal("w1", "confirm")
    async with open_runtime(db, workflows=[checkout], clock=VirtualClock(), worker=False) as client:
        info2 = await client.describe("w1")
        assert repr(info2.vars["card"]) == "Secret('***')"
        with pytest.raises(EncryptionKeyError, match="key 'k1'"):
            info2.vars["card"].reveal()
    assert await _read_snapshot(db, "w1") == before
    clock = VirtualClock()
    async with open_runtime(
        db, workflows=[checkout], clock=clock, encryption_key="k2:" + OTHER.hex(), encryption_keys={"k1": KEY}
    ) as rt:
        await clock.sleep(0.001)
        await rt.signal("w1", "confirm")
        assert (await rt.get_handle("w1").result())["receipt"].reveal() == "rcpt-" + TOKEN


async def _read_snapshot(db: str, run_id: str) -> bytes:
    if db.startswith("postgresql://"):
        import asyncpg

        conn = await asyncpg.connect(db)
        try:
            return bytes(await conn.fetchval("SELECT snapshot FROM wayline.runs WHERE run_id = $1", run_id))
        finally:
            await conn.close()
    conn2 = sqlite3.connect(db)
    try:
        return bytes(conn2.execute("SELECT snapshot FROM runs WHERE run_id = ?", (run_id,)).fetchone()[0])
    finally:
        conn2.close()


async def _write_snapshot(db: str, run_id: str, data: bytes) -> None:
    if db.startswith("postgresql://"):
        import asyncpg

        conn = await asyncpg.connect(db)
        try:
            await conn.execute("UPDATE wayline.runs SET snapshot = $1 WHERE run_id = $2", data, run_id)
        finally:
            await conn.close()
        return
    conn2 = sqlite3.connect(db)
    try:
        with conn2:
            conn2.execute("UPDATE runs SET snapshot = ? WHERE run_id = ?", (data, run_id))
    finally:
        conn2.close()


async def test_a_tampered_or_moved_ciphertext_is_refused_and_left_as_it_was(db: str) -> None:
    clock = VirtualClock()
    async with open_runtime(db, workflows=[checkout], clock=clock, encryption_key=KEY) as rt:
        for run_id in ("a", "b"):
            await rt.start(checkout, {"card": Secret(TOKEN + run_id), "note": "n", "amount": 1}, run_id=run_id)
        await clock.sleep(0.001)
    # One bit of run a's ciphertext flipped (its last byte: the tag).
    snap = await _read_snapshot(db, "a")
    record = decode_record(snap)
    card = record.vars["card"]
    sealed = card._sealed
    flipped = msgspec.msgpack.Ext(sealed.code, sealed.data[:-1] + bytes([sealed.data[-1] ^ 1]))
    tampered = store_encode(msgspec.structs.replace(record, vars={**record.vars, "card": Secret._from_sealed(flipped)}))
    await _write_snapshot(db, "a", tampered)
    # Run a's ciphertext copied into run b, in the same field.
    snap_b = decode_record(await _read_snapshot(db, "b"))
    moved = store_encode(msgspec.structs.replace(snap_b, vars={**snap_b.vars, "card": card}))
    await _write_snapshot(db, "b", moved)
    async with open_runtime(db, workflows=[checkout], clock=VirtualClock(), encryption_key=KEY, worker=False) as rt:
        with pytest.raises(SecretDecryptError, match=r"run 'a'.*vars\['card'\].*altered") as info:
            await rt.describe("a")
        assert info.value.run_id == "a" and info.value.field == "vars['card']"
        with pytest.raises(SecretDecryptError, match=r"run 'b'.*vars\['card'\]"):
            await rt.describe("b")
        # A listing leaves them out rather than failing whole.
        assert await rt.list_runs(status=RunStatus.WAITING) == []
    assert await _read_snapshot(db, "a") == tampered and await _read_snapshot(db, "b") == moved


def test_a_json_cli_document_shows_a_secret_as_its_mask(tmp_path: Path) -> None:
    import asyncio

    path = str(tmp_path / "c.db")

    async def make() -> None:
        clock = VirtualClock()
        async with open_runtime(path, workflows=[checkout], clock=clock, encryption_key=KEY) as rt:
            await rt.start(checkout, {"card": Secret(TOKEN), "note": "n", "amount": 1}, run_id="j1")
            await clock.sleep(0.001)

    asyncio.run(make())
    proc = subprocess.run([str(WAYLINE), "runs", "show", "j1", "--json", "--db", path], capture_output=True, text=True)
    doc = json.loads(proc.stdout)
    assert doc["vars"]["card"] == "Secret('***')" and doc["input"]["card"] == "Secret('***')"


@workflow(name="listener")
async def listener(ctx: RunContext) -> Any:
    return await ctx.wait_signal("go")


async def test_encrypt_payloads_covers_messages_waiting_in_the_inbox(db: str) -> None:
    opts: dict[str, Any] = {"workflows": [listener], "encryption_key": KEY, "encrypt_payloads": True}
    clock = VirtualClock()
    async with open_runtime(db, clock=clock, **opts) as rt:
        await rt.start(listener, run_id="m1")
        await clock.sleep(0.001)
    async with open_runtime(db, clock=VirtualClock(), worker=False, **opts) as client:
        await client.signal("m1", "go", {"note": "inbox-PLAINTEXT", "pin": Secret("pin-PLAINTEXT")})
    at_rest = await stored(db)
    assert b"PLAINTEXT" not in at_rest and MAGIC in at_rest
    clock = VirtualClock()
    async with open_runtime(db, clock=clock, **opts) as rt:
        got = await rt.get_handle("m1").result()
    assert got["note"] == "inbox-PLAINTEXT" and got["pin"].reveal() == "pin-PLAINTEXT"
