"""Size limits and large values kept out of the snapshot: stored once in the blob table,
referenced from snapshots and history, deduplicated, read back whole."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec
import pytest

from wayline import RunContext, RunFailed, activity, open_runtime, workflow
from wayline.errors import PayloadError
from wayline.persistence import (
    MemoryStore,
    PayloadLimits,
    RunRecord,
    RunStatus,
    SQLiteStore,
    StepSucceeded,
    Store,
)
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio

BIG = {"doc": "x" * 40_000}  # above the 16 KiB offload size, below the 256 KiB limit


async def blob_rows(store: Store) -> tuple[int, int]:
    """(blobs, run_blobs) rows in the store's database."""
    if isinstance(store, SQLiteStore):
        conn = sqlite3.connect(store.path)
        try:
            blobs = conn.execute("SELECT count(*) FROM blobs").fetchone()[0]
            refs = conn.execute("SELECT count(*) FROM run_blobs").fetchone()[0]
            return blobs, refs
        finally:
            conn.close()
    rows = await store._fetch("SELECT (SELECT count(*) FROM wayline.blobs), (SELECT count(*) FROM wayline.run_blobs)")  # type: ignore[attr-defined]
    return int(rows[0][0]), int(rows[0][1])


async def test_large_values_are_stored_once_and_read_back_whole(store: Store) -> None:
    rec = RunRecord(run_id="a", workflow="w", status=RunStatus.RUNNING, input=BIG, vars={"big": BIG, "small": 1})
    assert await store.create_run(rec, []) is None
    for step in range(5):  # the same vars at each checkpoint: nothing new to store
        event = StepSucceeded(ts=float(step), step="s", index=step, attempt=1, result=BIG if step == 2 else step)
        rec = msgspec.structs.replace(rec, steps=step + 1, history_seq=step + 1, vars={**rec.vars, "small": step})
        await store.checkpoint(rec, [event])
    await store.create_run(RunRecord(run_id="b", workflow="w", status=RunStatus.RUNNING, input=BIG), [])
    got = await store.get_run("a")
    assert got is not None and got.input == BIG and got.vars == {"big": BIG, "small": 4}
    history = await store.get_history("a")
    assert [e.result for e in history if isinstance(e, StepSucceeded)] == [0, 1, BIG, 3, 4]
    assert [r.input for r in await store.list_runs()] == [BIG, BIG]
    if not isinstance(store, MemoryStore):
        # one blob (input, var and step result are one value), referred to by both runs
        assert await blob_rows(store) == (1, 2)


async def test_limits_name_what_is_too_large(store: Store) -> None:
    rec = RunRecord(run_id="a", workflow="w", status=RunStatus.RUNNING)
    await store.create_run(rec, [])
    huge = "y" * 300_000
    with pytest.raises(PayloadError, match=r"ctx.vars\['huge'\] of run 'a' cannot be stored: it is 293.0 KiB"):
        store.checkpoint(msgspec.structs.replace(rec, vars={"huge": huge}), [])
    event = StepSucceeded(ts=1.0, step="fetch", index=3, attempt=1, result=huge)
    with pytest.raises(PayloadError, match=r"result of step 'fetch' \(#3\) of run 'a'"):
        store.checkpoint(rec, [event])
    many = {f"k{i}": "z" * 200_000 for i in range(6)}
    with pytest.raises(PayloadError, match=r"ctx.vars of run 'a' cannot be stored: they are 1.1 MiB encoded in total"):
        store.checkpoint(msgspec.structs.replace(rec, vars=many), [])
    with pytest.raises(PayloadError, match="input of run 'big'"):
        await store.create_run(RunRecord(run_id="big", workflow="w", input=huge), [])
    assert await store.get_run("big") is None
    assert (await store.get_run("a")).vars == {}  # type: ignore[union-attr]


@activity(name="touch")
async def touch(i: int) -> int:
    return i


@workflow(name="holder")
async def holder(ctx: RunContext, size: int) -> int:
    ctx.vars["blob"] = b"\x01" * size
    for i in range(100):
        await ctx.run(touch, i)
    return len(ctx.vars["blob"])


def _written() -> int:
    with open("/proc/self/io") as f:
        return int(next(line for line in f if line.startswith("wchar:")).split()[1])


async def test_a_large_variable_is_written_once_not_at_every_step(tmp_path: Path) -> None:
    """1 MB in ctx.vars and 100 steps: about 1 MB written in all, not 100 MB."""
    limits = PayloadLimits(max_value_bytes=4 << 20, max_context_bytes=4 << 20)
    async with open_runtime(
        str(tmp_path / "o.db"), workflows=[holder], clock=VirtualClock(), payload_limits=limits
    ) as rt:
        before = _written()
        assert await (await rt.start(holder, 1 << 20, run_id="h")).result() == 1 << 20
        written = _written() - before
        assert (await rt.describe("h")).vars["blob"] == b"\x01" * (1 << 20)
    assert 1 << 20 < written < 6 << 20, written
    # the same run without offload writes the megabyte at every checkpoint
    plain = PayloadLimits(max_value_bytes=4 << 20, max_context_bytes=4 << 20, offload_bytes=8 << 20)
    async with open_runtime(
        str(tmp_path / "p.db"), workflows=[holder], clock=VirtualClock(), payload_limits=plain
    ) as rt:
        before = _written()
        await (await rt.start(holder, 1 << 20, run_id="h")).result()
        assert _written() - before > 50 << 20


@workflow(name="oversized")
async def oversized(ctx: RunContext) -> None:
    ctx.vars["page"] = "p" * 300_000
    await ctx.run(touch, 1)


async def test_an_oversized_variable_fails_the_run_naming_it(tmp_path: Path) -> None:
    async with open_runtime(str(tmp_path / "v.db"), workflows=[oversized], clock=VirtualClock()) as rt:
        with pytest.raises(RunFailed) as failed:
            await (await rt.start(oversized, run_id="v")).result()
        assert failed.value.error == "PayloadError"
        assert "ctx.vars['page'] of run 'v'" in (failed.value.cause or "") and "256.0 KiB" in (failed.value.cause or "")


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="offload_bytes must be a positive number"):
        PayloadLimits(offload_bytes=0)
