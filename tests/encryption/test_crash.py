"""Secrets and rotation with the process dying at every store write (before it, and after it
committed), then a restart on the same SQLite file: every run ends with its secrets intact,
and a rotation started over finishes with nothing left under the old key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from _support import find_crash
from encryption._at_rest import key_ids_in, sqlite_bytes
from wayline import RunContext, Secret, activity, open_runtime, workflow
from wayline.persistence import SQLiteStore
from wayline.runtime import rotate_keys
from wayline.testing import FaultInjectingStore, VirtualClock

pytestmark = pytest.mark.anyio

OLD = "old:" + bytes(range(32)).hex()
NEW = "new:" + bytes(range(50, 82)).hex()


@activity(name="sign")
async def sign(key: Secret[str], i: int) -> Secret[str]:
    return Secret(f"{key.reveal()}/{i}")


@workflow(name="signer")
async def signer(ctx: RunContext, key: Secret[str]) -> list[str]:
    ctx.vars["key"] = key
    ctx.vars["sigs"] = [await ctx.run(sign, key, i) for i in range(2)]
    return [s.reveal() for s in ctx.vars["sigs"]]


def expected(i: int) -> list[str]:
    return [f"key-{i}/0", f"key-{i}/1"]


async def workload(store: Any) -> None:
    async with open_runtime(store, workflows=[signer], clock=VirtualClock(), encryption_key=OLD) as rt:
        handles = [await rt.start(signer, Secret(f"key-{i}"), run_id=f"s{i}") for i in range(3)]
        for i, handle in enumerate(handles):
            assert await handle.result() == expected(i)
    async with open_runtime(
        store, workflows=[signer], clock=VirtualClock(), encryption_key=NEW, encryption_keys=[OLD]
    ) as rt:
        await rotate_keys(rt, batch_size=1)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("when", ["before", "after"])
async def test_secrets_and_rotation_with_a_crash_at_every_write(tmp_path: Path, when: str) -> None:
    clean = FaultInjectingStore(SQLiteStore(tmp_path / "clean.db"))
    await workload(clean)
    total = clean.writes
    assert total > 10
    assert key_ids_in(sqlite_bytes(str(tmp_path / "clean.db")), "old", "new") == {"new"}
    for n in range(1, total + 1):
        path = tmp_path / f"{when}-{n}.db"
        faulty = FaultInjectingStore(SQLiteStore(path), crash_at=n, when=when)
        try:
            await workload(faulty)
        except BaseException as exc:
            if find_crash(exc) is None:
                raise
        # The restart: every run finishes with its secrets, and the rotation is run again.
        async with open_runtime(
            str(path), workflows=[signer], clock=VirtualClock(), encryption_key=NEW, encryption_keys=[OLD]
        ) as rt:
            for i in range(3):
                if await rt.store.get_run(f"s{i}") is None:
                    await rt.start(signer, Secret(f"key-{i}"), run_id=f"s{i}")
                assert await rt.get_handle(f"s{i}").result() == expected(i), (when, n, i)
            again = await rotate_keys(rt)
            assert not again.failed, (when, n, again.failed)
        assert key_ids_in(sqlite_bytes(str(path)), "old", "new") == {"new"}, (when, n)
        async with open_runtime(str(path), workflows=[signer], clock=VirtualClock(), encryption_key=NEW) as rt:
            for i in range(3):
                assert (await rt.describe(f"s{i}")).vars["key"].reveal() == f"key-{i}"
