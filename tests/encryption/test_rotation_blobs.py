"""Key rotation covers the large values offloaded to the blob table: after a rotation (even one
stopped half-way and run again) the old key can go, and every run reads back and finishes.
SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from _postgres import fresh_database
from encryption._at_rest import MAGIC
from wayline import RunContext, activity, open_runtime, workflow
from wayline.persistence import KeyRotation
from wayline.runtime import rotate_keys
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio

OLD = "old:" + bytes(range(32)).hex()
NEW = "new:" + bytes(range(100, 132)).hex()
RUNS = 6
BIG = 40 * 1024  # above the 16 KiB offload threshold, below the 256 KiB limit


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "postgres":
        with fresh_database() as url:
            yield url
        return
    yield str(tmp_path / "wayline.db")


@activity(name="blob_report")
async def blob_report(seed: str) -> str:
    return (seed[::-1] * (BIG // len(seed) + 1))[:BIG]


@workflow(name="blob_holder")
async def blob_holder(ctx: RunContext, seed: str) -> int:
    ctx.vars["big"] = (seed * (BIG // len(seed) + 1))[:BIG]
    report = await ctx.run(blob_report, seed)
    await ctx.wait_signal("go")
    return len(ctx.vars["big"]) + len(report) + ctx.vars["big"].count(seed[:4])


def seed(i: int) -> str:
    return f"PLAIN-{i:02d}-"


def expected(i: int) -> int:
    s = seed(i)
    return 2 * BIG + (s * (BIG // len(s) + 1))[:BIG].count(s[:4])


async def _blob_keys(db: str) -> list[str]:
    """The key id of each stored blob (whose data is encrypted whole)."""
    if db.startswith("postgresql://"):
        import asyncpg

        conn = await asyncpg.connect(db)
        try:
            rows = [bytes(r[0]) for r in await conn.fetch("SELECT data FROM wayline.blobs")]
        finally:
            await conn.close()
    else:
        import sqlite3

        with sqlite3.connect(db) as conn:
            rows = [bytes(r[0]) for r in conn.execute("SELECT data FROM blobs")]
    out = []
    for data in rows:
        at = data.index(MAGIC) + len(MAGIC)
        out.append(data[at + 1 : at + 1 + data[at]].decode())
    return sorted(out)


class Stop(Exception):
    pass


async def test_rotation_reencrypts_offloaded_values_and_a_rerun_finishes(db: str) -> None:
    clock = VirtualClock()
    async with open_runtime(db, workflows=[blob_holder], clock=clock, encryption_key=OLD, encrypt_payloads=True) as rt:
        for i in range(RUNS):
            await rt.start(blob_holder, seed(i), run_id=f"b{i:02d}")
        await clock.sleep(0.001)
        for i in range(RUNS):
            info = await rt.describe(f"b{i:02d}")
            assert len(info.vars["big"]) == BIG
    before = await _blob_keys(db)
    # Each run's variable, its input... and its step's result: all offloaded, all under "old".
    assert len(before) >= 2 * RUNS and set(before) == {"old"}

    # A rotation that stops after its first batch (as a crash would): nothing is lost.
    def stop(done: KeyRotation) -> None:
        raise Stop

    async with open_runtime(
        db, workflows=[blob_holder], clock=VirtualClock(), encryption_key=NEW, encryption_keys=[OLD], worker=False
    ) as rt:
        with pytest.raises(Stop):
            await rotate_keys(rt, batch_size=2, progress=stop)
    half = await _blob_keys(db)
    assert len(half) == len(before) and set(half) == {"old", "new"}

    async with open_runtime(
        db, workflows=[blob_holder], clock=VirtualClock(), encryption_key=NEW, encryption_keys=[OLD], worker=False
    ) as rt:
        rotation = await rotate_keys(rt, batch_size=2)
        assert not rotation.failed
        assert 0 < rotation.blobs < len(before)  # the rest of them
        again = await rotate_keys(rt)
        assert (again.blobs, again.failed) == (0, [])
    after = await _blob_keys(db)
    # Rewritten in place: the same blobs, under their old addresses, now all under "new".
    assert len(after) == len(before) and set(after) == {"new"}

    # The old key is gone: every run reads back whole and finishes.
    clock = VirtualClock()
    async with open_runtime(db, workflows=[blob_holder], clock=clock, encryption_key=NEW, encrypt_payloads=True) as rt:
        await clock.sleep(0.001)
        for i in range(RUNS):
            info = await rt.describe(f"b{i:02d}")
            assert info.vars["big"].startswith(seed(i)) and len(info.vars["big"]) == BIG
            await rt.signal(f"b{i:02d}", "go")
        for i in range(RUNS):
            assert await rt.get_handle(f"b{i:02d}").result() == expected(i)
