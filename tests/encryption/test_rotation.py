"""Key rotation: every stored secret re-encrypted with the newest key, in batches, while runs
go on (some checkpoint in the middle of it); afterwards the old key is not needed. SQLite and
PostgreSQL, through the API and through ``wayline keys rotate``."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from encryption._at_rest import key_ids_in, stored
from wayline import RunContext, Secret, activity, open_runtime, workflow
from wayline.persistence import KeyRotation, RunStatus
from wayline.runtime import rotate_keys
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio

OLD = "old:" + bytes(range(32)).hex()
NEW = "new:" + bytes(range(100, 132)).hex()
WAYLINE = Path(sys.executable).with_name("wayline")
RUNS = 30


@activity(name="token_length")
async def token_length(token: Secret[str]) -> Secret[int]:
    return Secret(len(token.reveal()))


@workflow(name="holder")
async def holder(ctx: RunContext, token: Secret[str]) -> int:
    ctx.vars["token"] = token
    n = await ctx.run(token_length, token)
    ctx.vars["n"] = n
    await ctx.wait_signal("go")
    again = await ctx.run(token_length, ctx.vars["token"])
    value: int = n.reveal() + again.reveal()
    return value


def token(i: int) -> str:
    return f"token-{i:03d}-" + "x" * i


async def _start_all(db: str) -> None:
    clock = VirtualClock()
    async with open_runtime(db, workflows=[holder], clock=clock, encryption_key=OLD) as rt:
        for i in range(RUNS):
            await rt.start(holder, Secret(token(i)), run_id=f"r{i:03d}")
        await clock.sleep(0.001)
        # A few runs end under the old key: their rows are rotated too.
        for i in range(5):
            await rt.signal(f"r{i:03d}", "go")
            await rt.get_handle(f"r{i:03d}").result()


async def test_rotation_reencrypts_everything_while_runs_checkpoint(db: str) -> None:
    await _start_all(db)
    assert key_ids_in(await stored(db), "old", "new") == {"old"}
    clock = VirtualClock()
    seen: list[KeyRotation] = []
    async with open_runtime(db, workflows=[holder], clock=clock, encryption_key=NEW, encryption_keys=[OLD]) as rt:
        await clock.sleep(0.001)

        async def go_on() -> None:
            # Runs in flight: signalled while the rotation works, they checkpoint and end.
            for i in range(5, 15):
                await rt.signal(f"r{i:03d}", "go")
                await asyncio.sleep(0)

        rotation, _ = await asyncio.gather(rotate_keys(rt, batch_size=4, progress=lambda r: seen.append(r)), go_on())
        for i in range(5, 15):
            assert await rt.get_handle(f"r{i:03d}").result() == 2 * len(token(i))
    assert rotation.key_id == "new" and rotation.runs == RUNS and not rotation.failed
    # The 5 ended runs' snapshots needed it; the waiting runs were loaded by the runtime and
    # checkpointed with the new key already (or raced it), their history rows did need it.
    assert rotation.snapshots >= 5 and rotation.history_rows > 0
    assert len(seen) == -(-RUNS // 4)  # one report per batch of 4
    assert key_ids_in(await stored(db), "old", "new") == {"new"}

    # The old key is no longer needed: every run reads, and the rest finish.
    clock = VirtualClock()
    async with open_runtime(db, workflows=[holder], clock=clock, encryption_key=NEW) as rt:
        await clock.sleep(0.001)
        for i in range(15, RUNS):
            assert (await rt.describe(f"r{i:03d}")).vars["token"].reveal() == token(i)
            await rt.signal(f"r{i:03d}", "go")
        for i in range(RUNS):
            assert await rt.get_handle(f"r{i:03d}").result() == 2 * len(token(i))
        assert len(await rt.list_runs(status=RunStatus.SUCCEEDED)) == RUNS
        # A second rotation finds nothing to do.
        again = await rotate_keys(rt)
        assert (again.snapshots, again.history_rows, again.failed) == (0, 0, [])


async def test_rotation_without_the_old_key_reports_the_runs_it_left(db: str) -> None:
    await _start_all(db)
    before = await stored(db)
    async with open_runtime(db, workflows=[holder], clock=VirtualClock(), encryption_key=NEW, worker=False) as rt:
        rotation = await rotate_keys(rt, batch_size=7)
    assert rotation.snapshots == 0 and len({r for r, _ in rotation.failed}) == RUNS
    assert "key 'old'" in rotation.failed[0][1]
    assert key_ids_in(await stored(db), "old", "new") == {"old"}
    if not db.startswith("postgresql"):
        assert await stored(db) == before or key_ids_in(await stored(db), "new") == set()  # rows untouched
    async with open_runtime(db, workflows=[holder], clock=VirtualClock(), encryption_key=OLD, worker=False) as rt:
        assert (await rt.describe("r020")).vars["token"].reveal() == token(20)


def test_wayline_keys_rotate(tmp_path: Path) -> None:
    path = str(tmp_path / "k.db")
    asyncio.run(_start_all(path))
    env = {**os.environ, "WAYLINE_ENCRYPTION_KEY": f"{NEW},{OLD}"}
    proc = subprocess.run(
        [str(WAYLINE), "keys", "rotate", "--batch-size", "8", "--db", path], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert f"of {RUNS} runs with key 'new'" in proc.stdout
    assert key_ids_in(_sync_stored(path), "old", "new") == {"new"}
    # Without the variable: a precise error, exit 1.
    env.pop("WAYLINE_ENCRYPTION_KEY")
    proc = subprocess.run([str(WAYLINE), "keys", "rotate", "--db", path], capture_output=True, text=True, env=env)
    assert proc.returncode == 1 and "WAYLINE_ENCRYPTION_KEY is not set" in proc.stderr


def _sync_stored(path: str) -> bytes:
    out: Any = asyncio.run(stored(path))
    return bytes(out)


@workflow(name="addressed")
async def addressed(ctx: RunContext, address: str) -> str:
    ctx.vars["address"] = address
    await ctx.wait_signal("go")
    return "shipped to " + address


async def test_values_encrypted_whole_stay_encrypted_whoever_rotates_them(db: str) -> None:
    clock = VirtualClock()
    async with open_runtime(db, workflows=[addressed], clock=clock, encryption_key=OLD, encrypt_payloads=True) as rt:
        await rt.start(addressed, "1 PLAINTEXT Road", run_id="a1")
        await clock.sleep(0.001)
    # Rotated by a runtime (here a client) that does not itself use encrypt_payloads.
    async with open_runtime(
        db, workflows=[addressed], clock=VirtualClock(), encryption_key=NEW, encryption_keys=[OLD], worker=False
    ) as rt:
        rotation = await rotate_keys(rt)
    assert rotation.snapshots == 1 and not rotation.failed
    at_rest = await stored(db)
    assert b"PLAINTEXT" not in at_rest and key_ids_in(at_rest, "old", "new") == {"new"}
    clock = VirtualClock()
    async with open_runtime(db, workflows=[addressed], clock=clock, encryption_key=NEW, encrypt_payloads=True) as rt:
        await clock.sleep(0.001)
        await rt.signal("a1", "go")
        assert await rt.get_handle("a1").result() == "shipped to 1 PLAINTEXT Road"


@workflow(name="receiver")
async def receiver(ctx: RunContext, _: None) -> int:
    got = await ctx.wait_signal("token")
    value: int = len(got["token"].reveal())
    return value


@pytest.mark.parametrize("payloads", [False, True])
async def test_rotation_reencrypts_inbox_messages_events_and_schedule_inputs(db: str, payloads: bool) -> None:
    clock = VirtualClock()
    async with open_runtime(db, workflows=[receiver], clock=clock, encryption_key=OLD, encrypt_payloads=payloads) as rt:
        await rt.start(receiver, None, run_id="rx")
        await clock.sleep(0.001)
        await rt.send_event("card/added", {"token": Secret("event-token")}, id="ev-1")
        schedule = await rt.create_schedule("yearly", receiver, None, every=365 * 86400)
        await schedule.pause()
        await rt.create_schedule("secret-input", "receiver", {"token": Secret("schedule-token")}, every=365 * 86400)
    # A client signals the run: the message waits in its inbox, under the old key.
    async with open_runtime(
        db, workflows=[receiver], clock=VirtualClock(), encryption_key=OLD, encrypt_payloads=payloads, worker=False
    ) as rt:
        await rt.signal("rx", "token", {"token": Secret("signal-token")})
    assert key_ids_in(await stored(db), "old", "new") == {"old"}

    async with open_runtime(
        db, workflows=[receiver], clock=VirtualClock(), encryption_key=NEW, encryption_keys=[OLD], worker=False
    ) as rt:
        rotation = await rotate_keys(rt, batch_size=2)
    assert not rotation.failed
    assert (rotation.inbox_messages, rotation.events, rotation.schedules) == (1, 1, 1)
    assert key_ids_in(await stored(db), "old", "new") == {"new"}

    # Only the new key from now on: the event, the schedule and the message all read.
    clock = VirtualClock()
    async with open_runtime(db, workflows=[receiver], clock=clock, encryption_key=NEW) as rt:
        (event,) = await rt.list_events()
        assert event.data["token"].reveal() == "event-token"
        info = await rt.get_schedule("secret-input").describe()
        assert info.input["token"].reveal() == "schedule-token"
        assert await rt.get_handle("rx").result() == len("signal-token")
        again = await rotate_keys(rt)
        assert (again.inbox_messages, again.events, again.schedules, again.failed) == (0, 0, 0, [])


async def test_rotation_without_the_old_key_names_the_event_and_schedule_it_left(db: str) -> None:
    async with open_runtime(db, workflows=[receiver], clock=VirtualClock(), encryption_key=OLD) as rt:
        await rt.send_event("card/added", {"token": Secret("event-token")}, id="ev-2")
        await rt.create_schedule("kept", receiver, {"token": Secret("s")}, every=365 * 86400)
    async with open_runtime(db, workflows=[receiver], clock=VirtualClock(), encryption_key=NEW, worker=False) as rt:
        rotation = await rotate_keys(rt)
    reasons = sorted(why for run_id, why in rotation.failed if run_id == "")
    assert len(reasons) == 2
    assert reasons[0].startswith("event 1 ('card/added', id 'ev-2'): ") and "key 'old'" in reasons[0]
    assert reasons[1].startswith("schedule 'kept': ") and "key 'old'" in reasons[1]
    assert key_ids_in(await stored(db), "old", "new") == {"old"}
