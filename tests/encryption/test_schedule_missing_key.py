"""A schedule whose input is stored under a key the runtime was not given: the runtime opens,
the schedule is not fired (said once, naming it and the key), describe and list show it as
unreadable, every other schedule fires; a runtime with the key fires it again."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from _support import idle
from wayline import RunContext, Secret, activity, open_runtime, workflow
from wayline.persistence import RunStatus
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio

OLD = "old:" + bytes(range(32)).hex()
OTHER = "other:" + bytes(range(50, 82)).hex()
CARD = "card-PLAINTEXT-77"
SEEN: list[Any] = []
WAYLINE = Path(sys.executable).with_name("wayline")


@activity(name="bill_card")
async def bill_card(card: Secret[str] | None) -> int:
    SEEN.append(None if card is None else card.reveal())
    return 0 if card is None else len(card.reveal())


@workflow(name="monthly_bill")
async def monthly_bill(ctx: RunContext, bill: dict[str, Any]) -> int:
    return await ctx.run(bill_card, bill.get("card"))


def _runs_of(runs: list[Any], schedule_id: str) -> list[str]:
    return sorted(r.run_id for r in runs if r.run_id.startswith(schedule_id + "@"))


@pytest.mark.parametrize("payloads", [False, True])
async def test_a_schedule_under_a_missing_key_is_skipped_and_the_rest_fire(
    db: str, payloads: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # Created by a client (which fires nothing) under the old key.
    async with open_runtime(
        db, workflows=[monthly_bill], clock=VirtualClock(), encryption_key=OLD, encrypt_payloads=payloads, worker=False
    ) as rt:
        await rt.create_schedule("locked", monthly_bill, {"card": Secret(CARD)}, every=60)

    # Another key only: the runtime opens all the same, and fires what it can read.
    SEEN.clear()
    caplog.set_level(logging.ERROR, logger="wayline.schedules")
    clock = VirtualClock()
    async with open_runtime(
        db, workflows=[monthly_bill], clock=clock, encryption_key=OTHER, encrypt_payloads=payloads
    ) as rt:
        await rt.create_schedule("plain", monthly_bill, {"n": 1}, every=60)
        for _ in range(3):
            await clock.sleep(60)
            await idle(rt)
        runs = await rt.list_runs(workflow="monthly_bill")
        assert len(_runs_of(runs, "plain")) == 3 and all(r.status is RunStatus.SUCCEEDED for r in runs)
        assert _runs_of(runs, "locked") == []
        assert SEEN == [None] * 3

        infos = {i.schedule_id: i for i in await rt.list_schedules()}
        assert infos["plain"].unreadable is None and infos["plain"].started == 3
        locked = infos["locked"]
        assert locked.unreadable is not None and locked.input is None and locked.started == 0
        assert "schedule 'locked'" in locked.unreadable and "key 'old'" in locked.unreadable
        assert (await rt.get_schedule("locked").describe()).unreadable == locked.unreadable
        assert CARD not in repr(locked)

    said = [r.getMessage() for r in caplog.records if r.name == "wayline.schedules"]
    assert len(said) == 1, said
    assert said[0].startswith("schedule locked: its input cannot be decrypted here") and "key 'old'" in said[0]

    # With the key again: the schedule is read and fires (its missed fires caught up).
    SEEN.clear()
    clock = VirtualClock(start=clock.time())
    keys = {"encryption_key": OLD, "encryption_keys": [OTHER], "encrypt_payloads": payloads}
    async with open_runtime(db, workflows=[monthly_bill], clock=clock, **keys) as rt:
        await clock.sleep(60)
        await idle(rt)
        runs = await rt.list_runs(workflow="monthly_bill")
        assert len(_runs_of(runs, "locked")) >= 1
        assert CARD in SEEN
        info = await rt.get_schedule("locked").describe()
        assert info.unreadable is None and info.input == {"card": Secret(CARD)}


def test_the_cli_lists_and_shows_a_schedule_under_a_missing_key(tmp_path: Path) -> None:
    db = str(tmp_path / "cli.db")

    async def create() -> None:
        async with open_runtime(
            db, workflows=[monthly_bill], clock=VirtualClock(), encryption_key=OLD, encrypt_payloads=True, worker=False
        ) as rt:
            await rt.create_schedule("locked", monthly_bill, {"card": Secret(CARD)}, every=60)
            await rt.create_schedule("plain", monthly_bill, None, every=60)

    asyncio.run(create())
    env = {**os.environ, "WAYLINE_ENCRYPTION_KEY": OTHER}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [str(WAYLINE), "schedules", *args, "--db", db]
        return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)

    listed = cli("list")
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()[1:]}
    assert "unreadable input" in rows["locked"] and "active" in rows["plain"]
    shown = cli("show", "locked")
    assert shown.returncode == 0, shown.stderr
    assert "input      unreadable: " in shown.stdout and "key 'old'" in shown.stdout
    as_json = json.loads(cli("show", "locked", "--json").stdout)
    assert as_json["input"] is None and "key 'old'" in as_json["unreadable"]
    assert CARD not in listed.stdout + shown.stdout
