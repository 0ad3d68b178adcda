"""Singleton, idempotency keys and on-failure handlers."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import anyio
import pytest

from _support import idle
from wayline import (
    Event,
    RateLimit,
    RetryPolicy,
    RunCancelled,
    RunContext,
    RunFailed,
    RunStatus,
    Singleton,
    activity,
    on_event,
    open_runtime,
    workflow,
)
from wayline.errors import FlowSpecError, RateLimitedError
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio


async def started(rt: Any, run_id: str) -> None:
    """Once run ``run_id`` exists (a background task of the runtime creates it)."""
    with anyio.fail_after(10):
        while await rt.store.get_run(run_id) is None:  # noqa: ASYNC110 - a row another task writes
            await asyncio.sleep(0)


@workflow(name="sync_skip", singleton=Singleton(key=lambda x: x["account"]))
async def sync_skip(ctx: RunContext, job: dict[str, Any]) -> str:
    await ctx.wait_signal("done")  # holds its key until told (a timer could pass under load)
    return str(job["n"])


@workflow(name="sync_latest", singleton=Singleton(key=lambda x: x["account"], mode="cancel"))
async def sync_latest(ctx: RunContext, job: dict[str, Any]) -> str:
    await ctx.sleep(60)
    return str(job["n"])


@workflow(name="charge_once", idempotency_key=lambda e: e.data["order"], triggers=[on_event("order/paid")])
async def charge_once(ctx: RunContext, event: Event) -> int:
    return int(event.data["amount"])


@workflow(name="keyed", idempotency_key=lambda job: job["id"])
async def keyed(ctx: RunContext, job: dict[str, Any]) -> int:
    return int(job["n"])


@workflow(name="alert")
async def alert(ctx: RunContext, failure: dict[str, Any]) -> str:
    return f"{failure['workflow']} {failure['run_id']} failed: {failure['error']} ({failure['input']})"


@activity(name="flaky", retry=RetryPolicy(max_attempts=2, interval=1))
async def flaky(x: int) -> int:
    raise ValueError(f"bad {x}")


@workflow(name="fragile", on_failure=alert)
async def fragile(ctx: RunContext, x: int) -> int:
    return await ctx.run(flaky, x)


async def test_singleton_skip_ends_the_new_run_while_the_key_is_held(db: str) -> None:
    async with open_runtime(db, workflows=[sync_skip], clock=VirtualClock()) as rt:
        first = await rt.start(sync_skip, {"account": "a", "n": 1}, run_id="s1")
        other = await rt.start(sync_skip, {"account": "b", "n": 2}, run_id="s2")
        skipped = await rt.start(sync_skip, {"account": "a", "n": 3}, run_id="s3")
        with pytest.raises(RunCancelled, match="skipped: singleton key 'a' is held by run 's1'"):
            await skipped.result()
        for run_id in ("s1", "s2"):
            await rt.signal(run_id, "done")
        assert await first.result() == "1" and await other.result() == "2"
        again = await rt.start(sync_skip, {"account": "a", "n": 4}, run_id="s4")  # the key is free now
        await rt.signal("s4", "done")
        assert await again.result() == "4"


async def test_singleton_cancel_replaces_the_run_going_on(db: str) -> None:
    async with open_runtime(db, workflows=[sync_latest], clock=VirtualClock()) as rt:
        old = await rt.start(sync_latest, {"account": "a", "n": 1}, run_id="old")
        await idle(rt)
        new = await rt.start(sync_latest, {"account": "a", "n": 2}, run_id="new")
        with pytest.raises(RunCancelled, match="replaced by run 'new'"):
            await old.result()
        assert await new.result() == "2"


async def test_an_idempotency_key_makes_one_run_per_key(db: str) -> None:
    async with open_runtime(db, workflows=[charge_once, keyed], clock=VirtualClock()) as rt:
        a = await rt.send_event("order/paid", {"order": "o-1", "amount": 5})
        b = await rt.send_event("order/paid", {"order": "o-1", "amount": 6})  # another event, same order
        assert a.run_ids == b.run_ids == ("charge_once@key:o-1",)
        assert await rt.get_handle("charge_once@key:o-1").result() == 5
        h1 = await rt.start(keyed, {"id": "k", "n": 1})
        h2 = await rt.start(keyed, {"id": "k", "n": 2})
        assert h1.run_id == h2.run_id == "keyed@key:k"
        assert await h2.result() == 1
        assert len(await rt.list_runs(workflow="keyed")) == 1


async def test_on_failure_starts_the_handler_with_the_failed_run(db: str) -> None:
    async with open_runtime(db, workflows=[fragile, alert], clock=VirtualClock()) as rt:
        with pytest.raises(RunFailed, match="ValueError"):
            await (await rt.start(fragile, 7, run_id="f1", metadata={"corr": "c-7"})).result()
        await started(rt, "alert@failure:f1")
        out = await rt.get_handle("alert@failure:f1").result()
        assert out == "fragile f1 failed: ValueError (7)"
        assert (await rt.describe("alert@failure:f1")).metadata["corr"] == "c-7"
        failed = await rt.list_runs(status=RunStatus.FAILED)
        assert [r.run_id for r in failed] == ["f1"]  # still there, for redrive


async def test_a_handler_a_crash_kept_from_starting_starts_at_the_next_open(tmp_path: Path) -> None:
    db = str(tmp_path / "w.db")
    # Fail a run with no handler registered (as if the process died before starting it).
    async with open_runtime(db, workflows=[fragile], clock=VirtualClock()) as rt:
        with pytest.raises(Exception, match="ValueError"):
            await (await rt.start(fragile, 3, run_id="f3")).result()
        assert await rt.store.get_run("alert@failure:f3") is None
    async with open_runtime(db, workflows=[fragile, alert], clock=VirtualClock()) as rt:
        await started(rt, "alert@failure:f3")  # by the end of recovery (the poller's first beat)
        assert await rt.get_handle("alert@failure:f3").result() == "fragile f3 failed: ValueError (3)"


async def test_bad_specs_are_refused() -> None:
    async def body(ctx: RunContext, x: Any) -> None:
        return None

    with pytest.raises(FlowSpecError, match="mode must be 'skip' or 'cancel'"):
        workflow(name="w", singleton=Singleton(mode="drop"))(body)  # type: ignore[arg-type]
    with pytest.raises(FlowSpecError, match="not both"):
        from wayline import Concurrency

        workflow(name="w", singleton=Singleton(), concurrency=Concurrency(2))(body)
    bad = workflow(name="bad", idempotency_key=lambda x: None)(body)
    async with open_runtime(":memory:", workflows=[bad], clock=VirtualClock()) as rt:
        with pytest.raises(FlowSpecError, match="idempotency_key returned None"):
            await rt.start(bad, 1)


@workflow(name="notify", triggers=[on_event("alert")], rate_limit=RateLimit(2, 60, key=lambda e: e.data["user"]))
async def notify(ctx: RunContext, event: Event) -> str:
    return str(event.data["user"])


@workflow(name="report", rate_limit=RateLimit(1, 10))
async def report(ctx: RunContext, n: int) -> int:
    return n


async def test_a_rate_limit_drops_starts_beyond_it_and_says_so(db: str) -> None:
    clock = VirtualClock()
    async with open_runtime(db, workflows=[notify, report], clock=clock) as rt:
        sent = [await rt.send_event("alert", {"user": "ana"}) for _ in range(3)]
        assert [len(s.run_ids) for s in sent] == [1, 1, 0]
        assert sent[2].rate_limited == ("notify",)
        other = await rt.send_event("alert", {"user": "bo"})  # another key: its own budget
        assert len(other.run_ids) == 1 and other.rate_limited == ()
        await rt.start(report, 1, run_id="r1")
        with pytest.raises(RateLimitedError, match=r"run 'r2' was not started.*in 10s") as caught:
            await rt.start(report, 2, run_id="r2")
        assert caught.value.retry_after == 10
        assert await rt.store.get_run("r2") is None  # nothing was stored
        await rt.start(report, 1, run_id="r1")  # the same run again: not a new start, not refused
        await clock.sleep(61)  # past both windows
        assert await (await rt.start(report, 3, run_id="r3")).result() == 3
        later = await rt.send_event("alert", {"user": "ana"})
        assert len(later.run_ids) == 1
