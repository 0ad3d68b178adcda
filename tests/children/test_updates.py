"""Updates: ``rt.update`` asks a run, the run answers (``ctx.wait_update`` / ``upd.reply`` /
``upd.reject``), a validator refuses before anything is written, and a retry with the same
update id gets the same answer."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest

from wayline import RunContext, activity, open_runtime, workflow
from wayline.errors import UpdateNotAnsweredError, UpdateRejectedError, UpdateTimeoutError
from wayline.history import UpdateAccepted, UpdateAnswered
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio

priced: Counter[str] = Counter()


@pytest.fixture(autouse=True)
def _reset() -> None:
    priced.clear()


@activity(name="price")
async def price(sku: str) -> float:
    priced[sku] += 1
    return 2.5


def check_item(payload: Any) -> None:
    if not isinstance(payload, dict) or not payload.get("sku"):
        raise ValueError("an item needs a sku")


@workflow(name="cart", validators={"add_item": check_item})
async def cart(ctx: RunContext, limit: int) -> list[str]:
    items: list[str] = []
    while len(items) < limit:
        upd = await ctx.wait_update("add_item")
        sku = upd.payload["sku"]
        if sku in items:
            await upd.reject("Duplicate", f"{sku} is already in the cart")
            continue
        cost = await ctx.run(price, sku)
        items.append(sku)
        ctx.vars["items"] = list(items)
        await upd.reply({"ok": True, "sku": sku, "cost": cost, "count": len(items)})
    return items


async def _history(rt: Any, run_id: str) -> list[Any]:
    return [e async for e in rt.history(run_id)]


async def test_an_update_returns_the_runs_answer_and_a_rejection_raises(tmp_path: Path) -> None:
    async with open_runtime(tmp_path / "w.db", workflows=[cart], clock=VirtualClock()) as rt:
        handle = await rt.start(cart, 2, run_id="c")
        first = await rt.update("c", "add_item", {"sku": "x"})
        with pytest.raises(UpdateRejectedError, match="x is already in the cart") as refused:
            await rt.update("c", "add_item", {"sku": "x"})
        second = await rt.update("c", "add_item", {"sku": "y"})
        assert await handle.result() == ["x", "y"]
        events = await _history(rt, "c")
    assert first == {"ok": True, "sku": "x", "cost": 2.5, "count": 1}
    assert second["count"] == 2
    assert (refused.value.error, refused.value.run_id) == ("Duplicate", "c")
    assert [e.name for e in events if isinstance(e, UpdateAccepted)] == ["add_item"] * 3
    assert [e.error for e in events if isinstance(e, UpdateAnswered)] == [None, "Duplicate", None]


async def test_the_validator_refuses_before_anything_is_written(tmp_path: Path) -> None:
    async with open_runtime(tmp_path / "w.db", workflows=[cart], clock=VirtualClock()) as rt:
        await rt.start(cart, 1, run_id="c")
        await rt.clock.sleep(1)
        before = await _history(rt, "c")
        with pytest.raises(UpdateRejectedError, match="an item needs a sku") as refused:
            await rt.update("c", "add_item", {"quantity": 3})
        assert refused.value.error == "ValueError"
        assert await rt.store.get_inbox("c") == []  # nothing was committed
        assert await _history(rt, "c") == before
        assert (await rt.update("c", "add_item", {"sku": "z"}))["sku"] == "z"


async def test_an_update_sent_before_the_run_waits_is_kept_and_answered(tmp_path: Path) -> None:
    @workflow(name="late")
    async def late(ctx: RunContext) -> str:
        await ctx.sleep(60)
        upd = await ctx.wait_update("ping")
        await upd.reply(f"pong:{upd.payload}")
        return "done"

    async with open_runtime(tmp_path / "w.db", workflows=[late], clock=VirtualClock()) as rt:
        handle = await rt.start(late, run_id="l")
        with anyio.fail_after(10):
            assert await rt.update("l", "ping", 7) == "pong:7"  # waits out the sleep (virtual time)
            assert await handle.result() == "done"


async def test_a_retry_with_the_same_update_id_gets_the_same_answer_and_runs_nothing_twice(tmp_path: Path) -> None:
    async with open_runtime(tmp_path / "w.db", workflows=[cart], clock=VirtualClock()) as rt:
        await rt.start(cart, 3, run_id="c")
        first = await rt.update("c", "add_item", {"sku": "a"}, update_id="u-1")
        again = await rt.update("c", "add_item", {"sku": "a"}, update_id="u-1")
        assert again == first  # the recorded answer, not a "Duplicate" rejection
        assert priced == {"a": 1}
        accepted = [e.update_id for e in await _history(rt, "c") if isinstance(e, UpdateAccepted)]
    assert accepted == ["u-1"]


async def test_a_timeout_then_a_retry_with_the_same_id(tmp_path: Path) -> None:
    @workflow(name="slow")
    async def slow(ctx: RunContext) -> None:
        upd = await ctx.wait_update("work")
        await ctx.sleep(100)  # longer than the caller waits
        await upd.reply("worked")

    async with open_runtime(tmp_path / "w.db", workflows=[slow], clock=VirtualClock()) as rt:
        handle = await rt.start(slow, run_id="s")
        with pytest.raises(UpdateTimeoutError, match="update_id='job-9'"):
            await rt.update("s", "work", None, timeout=10, update_id="job-9")
        with anyio.fail_after(10):
            assert await rt.update("s", "work", None, update_id="job-9") == "worked"
            await handle.result()
        accepted = [e for e in await _history(rt, "s") if isinstance(e, UpdateAccepted)]
    assert len(accepted) == 1


async def test_a_run_that_ends_without_answering(tmp_path: Path) -> None:
    @workflow(name="deaf")
    async def deaf(ctx: RunContext) -> str:
        await ctx.wait_signal("go")
        return "bye"

    async with open_runtime(tmp_path / "w.db", workflows=[deaf], clock=VirtualClock()) as rt:
        await rt.start(deaf, run_id="d")

        async def go() -> None:
            await rt.clock.sleep(5)
            await rt.signal("d", "go")

        async with anyio.create_task_group() as tg:
            tg.start_soon(go)
            with pytest.raises(UpdateNotAnsweredError, match="ended \\(SUCCEEDED\\)"):
                await rt.update("d", "hello", 1)


def test_a_validator_must_be_a_plain_function() -> None:
    async def not_plain(payload: Any) -> None: ...

    with pytest.raises(TypeError, match="plain"):

        @workflow(name="bad", validators={"u": not_plain})
        async def bad(ctx: RunContext) -> None: ...


async def test_wayline_replay_passes_runs_waiting_on_a_child_or_an_update(tmp_path: Path) -> None:
    from wayline.persistence import SQLiteStore
    from wayline.runtime import ReplayVerdict, check_replay

    @workflow(name="kid-waits")
    async def kid_waits(ctx: RunContext) -> None:
        await ctx.wait_signal("never")

    @workflow(name="mom-waits")
    async def mom_waits(ctx: RunContext) -> None:
        await ctx.run_workflow(kid_waits)

    db = tmp_path / "w.db"
    async with open_runtime(db, workflows=[cart, mom_waits, kid_waits], clock=VirtualClock()) as rt:
        await rt.start(cart, 2, run_id="c")
        await rt.start(mom_waits, run_id="m")
        await rt.clock.sleep(1)
    store = SQLiteStore(db)
    await store.start()
    try:
        verdicts = [(r.run_id, r.verdict) for wf in (cart, mom_waits) for r in await check_replay(store, wf)]
    finally:
        await store.close()
    assert verdicts == [("c", ReplayVerdict.OK), ("m", ReplayVerdict.OK)]
