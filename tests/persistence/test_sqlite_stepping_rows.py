"""The writer's snapshot-only upsert for runs that keep stepping: the row's status and wake
time must always be what the last checkpoint said, whichever statement wrote it."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from wayline.persistence import RunRecord, RunStatus, SignalWait, SQLiteStore, TimerWait

pytestmark = pytest.mark.anyio


def _row(path: Path, run_id: str) -> tuple[str, float | None]:
    with sqlite3.connect(path) as conn:
        status, wake_at = conn.execute("SELECT status, wake_at FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    return status, wake_at


def _record(run_id: str, status: RunStatus, seq: int = 0, **changes: object) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        workflow="wf",
        version="1",
        status=status,
        input=None,
        created_at=1.0,
        updated_at=1.0 + seq,
        history_seq=seq,
        **changes,  # type: ignore[arg-type]
    )


async def test_status_and_wake_time_follow_every_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    store = SQLiteStore(path)
    await store.start()
    try:
        await store.create_run(_record("r", RunStatus.RUNNING), [])
        await store.checkpoint(_record("r", RunStatus.RUNNING, vars={"step": 1}), [])  # stepping: snapshot only
        await store.checkpoint(_record("r", RunStatus.RUNNING, vars={"step": 2}), [])
        assert _row(path, "r") == ("RUNNING", None)
        got = await store.get_run("r")
        assert got is not None and got.vars == {"step": 2}  # the snapshot did change
        waiting = _record("r", RunStatus.WAITING, waits=(TimerWait(step=3, due=500.0),))
        await store.checkpoint(waiting, [])  # leaves stepping: every column
        assert _row(path, "r") == ("WAITING", 500.0)
        await store.checkpoint(_record("r", RunStatus.RUNNING, vars={"step": 4}), [])  # back: every column
        assert _row(path, "r") == ("RUNNING", None)
        await store.checkpoint(_record("r", RunStatus.RUNNING, vars={"step": 5}), [])
        await store.checkpoint(_record("r", RunStatus.WAITING, waits=(SignalWait(step=6, signal="go"),)), [])
        assert _row(path, "r") == ("WAITING", None)
        await store.checkpoint(_record("r", RunStatus.SUCCEEDED, output=1), [])
        assert _row(path, "r") == ("SUCCEEDED", None)
        assert [r.run_id for r in await store.list_runs(statuses=(RunStatus.SUCCEEDED,))] == ["r"]
    finally:
        await store.close()


async def test_many_runs_in_one_batch_keep_their_own_status(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    store = SQLiteStore(path)
    await store.start()
    try:
        ids = [f"r{i}" for i in range(50)]
        for run_id in ids:
            await store.create_run(_record(run_id, RunStatus.RUNNING), [])
        # One batch: half keep stepping, half start waiting, all at once.
        await asyncio.gather(
            *(
                store.checkpoint(
                    _record(run_id, RunStatus.RUNNING, vars={"i": i})
                    if i % 2
                    else _record(run_id, RunStatus.WAITING, waits=(TimerWait(step=1, due=100.0 + i),)),
                    [],
                )
                for i, run_id in enumerate(ids)
            )
        )
        for i, run_id in enumerate(ids):
            assert _row(path, run_id) == (("RUNNING", None) if i % 2 else ("WAITING", 100.0 + i))
        waiting = {r.run_id for r in await store.list_runs(statuses=(RunStatus.WAITING,))}
        assert waiting == {run_id for i, run_id in enumerate(ids) if not i % 2}
    finally:
        await store.close()
