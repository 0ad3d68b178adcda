"""Key rotation covers the large values offloaded to the blob table: after a rotation (even one
stopped half-way and run again) the old key can go, and every run reads back and finishes.
SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from _support import find_crash
from encryption._at_rest import MAGIC
from wayline import RunContext, Secret, activity, open_runtime, workflow
from wayline.persistence import KeyRotation, SQLiteStore
from wayline.runtime import rotate_keys
from wayline.testing import FaultInjectingStore, VirtualClock

pytestmark = pytest.mark.anyio

OLD = "old:" + bytes(range(32)).hex()
NEW = "new:" + bytes(range(100, 132)).hex()
RUNS = 6
BIG = 40 * 1024  # above the 16 KiB offload threshold, below the 256 KiB limit


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


def _referenced_blob_keys(path: str) -> dict[str, str]:
    """Digest -> key id of each blob of a SQLite database that a snapshot or history row
    refers to (the digest is in their bytes, as text)."""
    import sqlite3

    with sqlite3.connect(path) as conn:
        rows = b"".join(bytes(r[0]) for r in conn.execute("SELECT snapshot FROM runs"))
        rows += b"".join(bytes(r[0]) for r in conn.execute("SELECT events FROM history"))
        blobs = [(d, bytes(data)) for d, data in conn.execute("SELECT digest, data FROM blobs")]
    out = {}
    for digest, data in blobs:
        if digest.encode() in rows:
            at = data.index(MAGIC) + len(MAGIC)
            out[digest] = data[at + 1 : at + 1 + data[at]].decode()
    return out


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


@workflow(name="secret_blob")
async def secret_blob(ctx: RunContext, seed: str) -> int:
    # Without encrypt_payloads: a large value holding a Secret is offloaded with the Secret
    # sealed inside it, bound to the field under the variable.
    ctx.vars["doc"] = {"body": (seed * (BIG // len(seed) + 1))[:BIG], "card": Secret(seed + "-card")}
    await ctx.wait_signal("go")
    return len(ctx.vars["doc"]["body"]) + len(ctx.vars["doc"]["card"].reveal())


async def test_a_secret_inside_an_offloaded_value_is_rotated_too(db: str) -> None:
    clock = VirtualClock()
    async with open_runtime(db, workflows=[secret_blob], clock=clock, encryption_key=OLD) as rt:
        for i in range(3):
            await rt.start(secret_blob, seed(i), run_id=f"s{i}")
        await clock.sleep(0.001)
    assert set(await _blob_keys(db)) == {"old"}
    async with open_runtime(
        db, workflows=[secret_blob], clock=VirtualClock(), encryption_key=NEW, encryption_keys=[OLD], worker=False
    ) as rt:
        rotation = await rotate_keys(rt)
    assert rotation.blobs == 3 and not rotation.failed
    assert set(await _blob_keys(db)) == {"new"}
    clock = VirtualClock()
    async with open_runtime(db, workflows=[secret_blob], clock=clock, encryption_key=NEW) as rt:
        await clock.sleep(0.001)
        for i in range(3):
            assert (await rt.describe(f"s{i}")).vars["doc"]["card"].reveal() == seed(i) + "-card"
            await rt.signal(f"s{i}", "go")
        for i in range(3):
            assert await rt.get_handle(f"s{i}").result() == BIG + len(seed(i) + "-card")


async def _crash_workload(store: Any) -> None:
    clock = VirtualClock()
    keys: dict[str, Any] = {"encryption_key": OLD, "encrypt_payloads": True}
    async with open_runtime(store, workflows=[blob_holder], clock=clock, **keys) as rt:
        for i in range(2):
            await rt.start(blob_holder, seed(i), run_id=f"b{i:02d}")
        await clock.sleep(0.001)
    async with open_runtime(
        store, workflows=[blob_holder], clock=VirtualClock(), encryption_key=NEW, encryption_keys=[OLD], worker=False
    ) as rt:
        await rotate_keys(rt, batch_size=1)


@pytest.mark.timeout(600)
async def test_blob_rotation_with_a_crash_at_every_write(tmp_path: Path) -> None:
    clean = FaultInjectingStore(SQLiteStore(tmp_path / "clean.db"))
    await _crash_workload(clean)
    total = clean.writes
    assert set(await _blob_keys(str(tmp_path / "clean.db"))) == {"new"}
    for when in ("before", "after"):
        for n in range(1, total + 1):
            path = str(tmp_path / f"{when}-{n}.db")
            faulty = FaultInjectingStore(SQLiteStore(path), crash_at=n, when=when)
            try:
                await _crash_workload(faulty)
            except BaseException as exc:
                if find_crash(exc) is None:
                    raise
            # The restart: the runs are started if the crash came first, the rotation run again.
            clock = VirtualClock()
            keys: dict[str, Any] = {"encryption_key": NEW, "encryption_keys": [OLD], "encrypt_payloads": True}
            async with open_runtime(path, workflows=[blob_holder], clock=clock, **keys) as rt:
                for i in range(2):
                    if await rt.store.get_run(f"b{i:02d}") is None:
                        await rt.start(blob_holder, seed(i), run_id=f"b{i:02d}")
                await clock.sleep(0.001)
                again = await rotate_keys(rt)
                assert not again.failed, (when, n, again.failed)
            # Every blob is under the new key: those a snapshot or history row refers to, and
            # those the run wrote before the crash and replaced after the restart.
            assert set(_referenced_blob_keys(path).values()) == {"new"}, (when, n)
            assert set(await _blob_keys(path)) == {"new"}, (when, n)
            # The old key is gone: both runs read back whole and finish.
            clock = VirtualClock()
            async with open_runtime(
                path, workflows=[blob_holder], clock=clock, encryption_key=NEW, encrypt_payloads=True
            ) as rt:
                await clock.sleep(0.001)
                for i in range(2):
                    assert len((await rt.describe(f"b{i:02d}")).vars["big"]) == BIG, (when, n)
                    await rt.signal(f"b{i:02d}", "go")
                for i in range(2):
                    assert await rt.get_handle(f"b{i:02d}").result() == expected(i), (when, n)


@workflow(name="changing")
async def changing(ctx: RunContext, seed: str) -> int:
    big = (seed * (BIG // len(seed) + 1))[:BIG]
    ctx.vars["big"] = big
    ctx.vars["gone"] = big.upper()
    await ctx.run(blob_report, seed)  # a checkpoint: both stored
    ctx.vars["big"] = big.lower()  # the first value is referred to by nothing now
    del ctx.vars["gone"]  # nor is this one, and nothing says which field it was
    await ctx.wait_signal("go")
    return len(ctx.vars["big"])


async def test_earlier_values_no_snapshot_refers_to_are_rotated_when_their_field_is_known(db: str) -> None:
    clock = VirtualClock()
    async with open_runtime(db, workflows=[changing], clock=clock, encryption_key=OLD, encrypt_payloads=True) as rt:
        for i in range(3):
            await rt.start(changing, seed(i), run_id=f"c{i}")
        await clock.sleep(0.001)
    before = await _blob_keys(db)
    assert set(before) == {"old"}
    async with open_runtime(
        db, workflows=[changing], clock=VirtualClock(), encryption_key=NEW, encryption_keys=[OLD], worker=False
    ) as rt:
        rotation = await rotate_keys(rt, batch_size=2)
    assert not rotation.failed
    # Per run: the step's result, the variable now and before (its field still known), and
    # the deleted variable's value, left (its field is not known), counted.
    assert rotation.stale_blobs == 3 and rotation.blobs == len(before) - 3
    assert Counter(await _blob_keys(db)) == {"new": len(before) - 3, "old": 3}
    # The whole of a new rotation is the three it cannot tell.
    async with open_runtime(
        db, workflows=[changing], clock=VirtualClock(), encryption_key=NEW, encryption_keys=[OLD], worker=False
    ) as rt:
        again = await rotate_keys(rt)
    assert (again.blobs, again.stale_blobs, again.failed) == (0, 3, [])
    clock = VirtualClock()
    async with open_runtime(db, workflows=[changing], clock=clock, encryption_key=NEW, encrypt_payloads=True) as rt:
        await clock.sleep(0.001)
        for i in range(3):
            await rt.signal(f"c{i}", "go")
        for i in range(3):
            assert await rt.get_handle(f"c{i}").result() == BIG
