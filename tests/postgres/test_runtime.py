"""`open_runtime("postgresql://...")`: today's runtime, end to end, on the PostgreSQL store."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from wayline import (
    CallbackError,
    RunCancelled,
    RunContext,
    RunStatus,
    SignalTimeoutError,
    activity,
    open_runtime,
    workflow,
)
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio

ran: Counter[str] = Counter()
outbox: list[str] = []
gate: dict[str, asyncio.Event] = {}


@activity(name="double")
async def double(x: int) -> int:
    ran[f"double{x}"] += 1
    return 2 * x


@activity(name="blocked")
async def blocked(x: int) -> int:
    ran[f"blocked{x}"] += 1
    gate["entered"].set()
    await gate["open"].wait()
    return x


@activity(name="send")
async def send(token: str, what: str) -> None:
    outbox.append(token)
    gate["sent"].set()


@workflow(name="everything")
async def everything(ctx: RunContext, n: int) -> dict[str, Any]:
    a = await ctx.run(double, n)
    both = await ctx.gather(ctx.run(double, n + 1), ctx.run(double, n + 2))
    await ctx.sleep(3600)  # a durable timer
    ctx.vars["slept"] = True
    try:
        sig = await ctx.wait_signal("go", timeout=600)
    except SignalTimeoutError:
        sig = "timeout"
    answer = await ctx.wait_for_callback(send, "approve", timeout=86400)
    try:
        await ctx.wait_for_callback(send, "reject", timeout=86400)
    except CallbackError as exc:
        rejected = exc.error
    return {"a": a, "both": both, "signal": sig, "answer": answer, "rejected": rejected}


@workflow(name="gated")
async def gated(ctx: RunContext, x: int) -> int:
    first = await ctx.run(double, x)
    return first + await ctx.run(blocked, x)


@workflow(name="waiter")
async def waiter(ctx: RunContext) -> str:
    got: str = await ctx.wait_signal("go")
    return got


WORKFLOWS = [everything, gated, waiter]


@pytest.fixture(autouse=True)
def _reset() -> None:
    ran.clear()
    outbox.clear()
    gate.clear()
    for name in ("entered", "open", "sent"):
        gate[name] = asyncio.Event()


async def next_token() -> str:
    await asyncio.wait_for(gate["sent"].wait(), timeout=30)
    gate["sent"].clear()
    return outbox[-1]


async def test_steps_timers_signals_callbacks_and_history(pg_url: str) -> None:
    clock = VirtualClock()
    async with open_runtime(pg_url, workflows=WORKFLOWS, clock=clock) as rt:
        handle = await rt.start(everything, 5, run_id="e")
        await rt.signal("e", "go", "signalled")  # kept in the inbox until the run waits for it
        await rt.complete_callback(await next_token(), {"ok": True})
        await rt.fail_callback(await next_token(), "Rejected", "no")
        assert await handle.result() == {
            "a": 10,
            "both": [12, 14],
            "signal": "signalled",
            "answer": {"ok": True},
            "rejected": "Rejected",
        }
        info = await rt.describe("e")
        assert info.status is RunStatus.SUCCEEDED and info.vars == {"slept": True}
        kinds = [type(e).__name__ async for e in rt.history("e")]
        assert kinds[0] == "RunStarted" and kinds[-1] == "RunSucceeded"
        assert {"SignalReceived", "CallbackCompleted", "CallbackFailed"} <= set(kinds)
        assert [r.run_id for r in await rt.list_runs(status=RunStatus.SUCCEEDED)] == ["e"]


async def test_a_restart_resumes_an_interrupted_run_from_its_checkpoint(pg_url: str) -> None:
    async with open_runtime(pg_url, workflows=WORKFLOWS) as rt:
        await rt.start(gated, 3, run_id="g")
        await asyncio.wait_for(gate["entered"].wait(), timeout=30)
    # the runtime is gone with the second step in flight; the next one resumes the run
    gate["open"].set()
    async with open_runtime(pg_url, workflows=WORKFLOWS) as rt:
        assert await rt.get_handle("g").result() == 9
    assert ran == Counter({"double3": 1, "blocked3": 2})  # the finished step never ran again


async def test_passivated_runs_come_back_for_a_message_and_a_cancel(pg_url: str) -> None:
    clock = VirtualClock()
    async with open_runtime(pg_url, workflows=WORKFLOWS, clock=clock, passivate_after=60) as rt:
        signalled = await rt.start(waiter, run_id="w")
        cancelled = await rt.start(waiter, run_id="c")
        await clock.sleep(120)
        assert (await rt.describe("w")).status is RunStatus.WAITING
        await rt.signal("w", "go", "hello")
        assert await signalled.result() == "hello"
        await rt.cancel("c", "bye")
        with pytest.raises(RunCancelled):
            await cancelled.result()


async def test_a_second_worker_shares_the_database_and_a_client_runs_nothing(pg_url: str) -> None:
    async with open_runtime(pg_url, workflows=WORKFLOWS, worker_id="one") as worker:
        handle = await worker.start(waiter, run_id="w")
        async with open_runtime(pg_url, workflows=WORKFLOWS, worker_id="two") as second:
            assert {w.worker_id for w in await worker.store.list_workers()} == {"one", "two"}
            assert second.worker_id == "two"
            async with open_runtime(pg_url, workflows=WORKFLOWS, worker=False) as client:
                assert client.worker_id is None
                await client.signal("w", "go", "from a client")  # committed, then delivered by its worker
                assert await client.get_handle("w").result() == "from a client"
        assert await handle.result() == "from a client"
