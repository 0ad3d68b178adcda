"""Typed ctx.vars: ``@workflow(vars=T)`` with a msgspec Struct, a dataclass or a TypedDict."""

from __future__ import annotations

import dataclasses
from typing import Any, TypedDict

import msgspec
import pytest

from wayline import RunContext, RunFailed, activity, open_runtime, workflow
from wayline.errors import VarsError
from wayline.persistence import SQLiteStore
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio


class OrderVars(msgspec.Struct):
    order_id: str = ""
    quantity: int = 0
    items: list[str] = []


@dataclasses.dataclass
class DcVars:
    total: float = 0.0
    note: str | None = None


class TdVars(TypedDict, total=False):
    count: int


@activity(name="price")
async def price(quantity: int) -> float:
    return quantity * 2.5


@workflow(name="typed", vars=OrderVars)
async def typed(ctx: RunContext, order: dict[str, Any]) -> dict[str, Any]:
    assert isinstance(ctx.vars, OrderVars)
    ctx.vars.order_id = order["id"]
    ctx.vars.quantity = order["quantity"]
    total = await ctx.run(price, ctx.vars.quantity)
    ctx.vars.items.append("widget")
    await ctx.wait_signal("go")
    return {"total": total, "vars": msgspec.to_builtins(ctx.vars)}


@workflow(name="wrong", vars=OrderVars)
async def wrong(ctx: RunContext, quantity: Any) -> str:
    ctx.vars.quantity = quantity
    try:
        await ctx.run(price, 1)
    except VarsError as exc:
        ctx.vars.quantity = 0  # fixed: the run goes on
        await ctx.run(price, 1)
        return str(exc)
    return "no error"


@workflow(name="wrong_at_end", vars=OrderVars)
async def wrong_at_end(ctx: RunContext) -> None:
    await ctx.run(price, 1)
    ctx.vars.items = "not a list"


@workflow(name="dc", vars=DcVars)
async def dc(ctx: RunContext) -> float:
    ctx.vars.total = await ctx.run(price, 2)
    return ctx.vars.total  # type: ignore[no-any-return]


@workflow(name="td", vars=TdVars)
async def td(ctx: RunContext) -> int:
    ctx.vars["count"] = 3
    await ctx.run(price, 1)
    ctx.vars["count"] = "three"
    await ctx.run(price, 1)
    return 0


async def test_typed_vars_are_checkpointed_as_json_and_shown(db: str) -> None:
    async with open_runtime(db, workflows=[typed], clock=VirtualClock()) as rt:
        handle = await rt.start(typed, {"id": "o-1", "quantity": 4}, run_id="t")
        await rt.clock.sleep(1)
        shown = (await rt.describe("t")).vars  # live
        assert shown == {"order_id": "o-1", "quantity": 4, "items": ["widget"]}
        assert (await rt.store.get_run("t")).vars == shown  # type: ignore[union-attr]
    if db == ":memory:":
        return
    # a restart replays the body: vars start from the defaults and come back field by field
    async with open_runtime(db, workflows=[typed], clock=VirtualClock()) as rt:
        await rt.signal("t", "go")
        out = await rt.get_handle("t").result()
        assert out == {"total": 10.0, "vars": {"order_id": "o-1", "quantity": 4, "items": ["widget"]}}
        assert (await rt.describe("t")).vars == out["vars"]
    del handle


async def test_a_wrong_type_fails_the_step_naming_the_field(tmp_path: Any) -> None:
    async with open_runtime(
        str(tmp_path / "w.db"), workflows=[wrong, wrong_at_end, dc, td], clock=VirtualClock()
    ) as rt:
        said = await (await rt.start(wrong, "many", run_id="w")).result()
        assert "at field 'quantity'" in said and "Expected `int`, got `str`" in said and "'w'" in said
        # nothing wrong was ever stored: the snapshot holds the fixed value
        assert (await rt.describe("w")).vars == {"order_id": "", "quantity": 0, "items": []}
        with pytest.raises(RunFailed) as failed:
            await (await rt.start(wrong_at_end, run_id="e")).result()
        assert failed.value.error == "VarsError" and "at field 'items'" in (failed.value.cause or "")
        assert (await rt.describe("e")).vars == {"order_id": "", "quantity": 0, "items": []}
        assert await (await rt.start(dc, run_id="d")).result() == 5.0
        assert (await rt.describe("d")).vars == {"total": 5.0, "note": None}
        with pytest.raises(RunFailed) as failed:
            await (await rt.start(td, run_id="td")).result()
        assert "at field 'count'" in (failed.value.cause or "")
        assert (await rt.describe("td")).vars == {"count": 3}


def test_unusable_types_are_refused_at_declaration() -> None:
    class Required(msgspec.Struct):
        needed: int

    with pytest.raises(VarsError, match="give every field a default"):
        workflow(name="r", vars=Required)(wrong.fn)
    with pytest.raises(VarsError, match="takes a msgspec Struct, a dataclass or a TypedDict"):
        workflow(name="r", vars=dict)(wrong.fn)


async def test_untyped_vars_stay_a_dict(tmp_path: Any) -> None:
    @workflow(name="plain")
    async def plain(ctx: RunContext) -> None:
        assert ctx.vars == {}
        ctx.vars["anything"] = {"goes": [1]}
        await ctx.run(price, 1)

    async with open_runtime(SQLiteStore(tmp_path / "p.db"), workflows=[plain], clock=VirtualClock()) as rt:
        await (await rt.start(plain, run_id="p")).result()
        assert (await rt.describe("p")).vars == {"anything": {"goes": [1]}}
