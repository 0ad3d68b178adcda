"""Each step's outcome is committed before the run goes on; group commit across many runs."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import pytest

from wayline import PayloadError, RunContext, RunFailed, activity, open_runtime, workflow
from wayline.persistence import RunRecord, SQLiteStore, StepSucceeded
from wayline.persistence._codec import decode_events
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio

_decode = msgspec.msgpack.Decoder(RunRecord)


def committed_steps(path: str, run_id: str) -> list[int]:
    """Indexes of the steps a fresh connection sees as succeeded (history rows + tail)."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("BEGIN")
        snap = conn.execute("SELECT snapshot FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        rows = conn.execute("SELECT events FROM history WHERE run_id = ? ORDER BY seq", (run_id,)).fetchall()
        conn.execute("COMMIT")
    finally:
        conn.close()
    events = [e for (data,) in rows for e in decode_events(data)]
    if snap is not None:
        events.extend(_decode.decode(snap[0]).tail)
    return [e.index for e in events if isinstance(e, StepSucceeded)]


@activity(name="look")
async def look(path: str, run_id: str) -> list[int]:
    return committed_steps(path, run_id)


@workflow(name="looker")
async def looker(ctx: RunContext, path: str) -> list[list[int]]:
    return [await ctx.run(look, path, ctx.run_id) for _ in range(6)]


async def test_each_step_is_committed_before_the_next_starts(tmp_path: Path) -> None:
    path = str(tmp_path / "d.db")
    async with open_runtime(path, workflows=[looker], clock=VirtualClock()) as rt:
        out = await (await rt.start(looker, path, run_id="l")).result()
    # step k sees exactly steps 0..k-1 on disk, from a connection of its own
    assert out == [list(range(k)) for k in range(6)]


@activity(name="inc")
async def inc(x: int) -> int:
    return x + 1


@workflow(name="five_inc")
async def five_inc(ctx: RunContext, x: int) -> int:
    for _ in range(5):
        x = await ctx.run(inc, x)
    return x


async def test_many_concurrent_runs_share_commits(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    commits: list[int] = []  # the size of each transaction the writer committed
    writes = Counter[str]()

    class Counting(SQLiteStore):
        def checkpoint(self, record: RunRecord, events: Any) -> Any:
            writes["checkpoint"] += 1
            return super().checkpoint(record, events)

    store = Counting(path)
    n = 500
    async with open_runtime(store, workflows=[five_inc], clock=VirtualClock()) as rt:
        # Transactions are counted where the group commit writes one (BEGIN ... COMMIT per
        # batch), not with a trace callback on the connection: the sqlite3 module expands the
        # whole statement (a multi-row insert of every run in the batch) for each trigger that
        # fires on each row, which made this test quadratic (95 s instead of 1 s).
        writer = store._writes
        write_batch = writer._write_batch_blocking

        def counted(batch: Any) -> Any:
            commits.append(batch.size)
            return write_batch(batch)

        writer._write_batch_blocking = counted  # type: ignore[method-assign]
        handles = await asyncio.gather(*(rt.start(five_inc, i, run_id=f"r{i}") for i in range(n)))
        results = await asyncio.gather(*(h.result() for h in handles))
    assert results == [i + 5 for i in range(n)]
    assert writes["checkpoint"] >= 5 * n
    assert sum(commits) >= writes["checkpoint"]  # every checkpoint was in a counted transaction
    assert len(commits) < writes["checkpoint"] / 20, (len(commits), writes["checkpoint"])


ran: Counter[str] = Counter()


@activity(name="fine")
async def fine() -> int:
    ran["fine"] += 1
    return 1


@workflow(name="bad_vars")
async def bad_vars(ctx: RunContext) -> None:
    ctx.vars["handle"] = object()  # not storable
    await ctx.run(fine)


async def test_unstorable_vars_fail_the_run_with_payload_error(db: str) -> None:
    ran.clear()
    async with open_runtime(db, workflows=[bad_vars], clock=VirtualClock()) as rt:
        with pytest.raises(RunFailed) as info:
            await (await rt.start(bad_vars, run_id="v")).result()
    assert info.value.error == "PayloadError"
    assert ran["fine"] == 1  # not re-run by restarts


@activity(name="kw")
async def kw(a: int, *, b: int = 0, c: str = "") -> str:
    return f"{a}-{b}-{c}"


@workflow(name="kwargs_wf")
async def kwargs_wf(ctx: RunContext) -> list[str]:
    return [await ctx.run(kw, 1, b=2, c="x"), await ctx.run(kw, 3)]


async def test_step_keyword_arguments(db: str) -> None:
    async with open_runtime(db, workflows=[kwargs_wf], clock=VirtualClock()) as rt:
        assert await (await rt.start(kwargs_wf, run_id="k")).result() == ["1-2-x", "3-0-"]


@workflow(name="fails")
async def fails(ctx: RunContext) -> None:
    raise ValueError("nope")


async def test_start_on_the_id_of_a_failed_run_returns_that_run(db: str) -> None:
    async with open_runtime(db, workflows=[fails], clock=VirtualClock()) as rt:
        with pytest.raises(RunFailed):
            await (await rt.start(fails, run_id="f")).result()
        again = await rt.start(fails, run_id="f")
        with pytest.raises(RunFailed) as info:
            await again.result()
        assert info.value.cause == "nope"
        assert len(await rt.list_runs()) == 1


def test_payload_error_names_what_cannot_be_stored() -> None:
    err = PayloadError("input of run 'x'", "unsupported type", run_id="x")
    assert err.run_id == "x" and err.what == "input of run 'x'"
    assert "JSON-like" in str(err)
