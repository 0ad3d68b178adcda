"""Run metadata and tags: given at start, set by the workflow, inherited by child runs,
searched with rt.list_runs on every store."""

from __future__ import annotations

from typing import Any

import pytest

from _support import parked
from wayline import RunContext, RunStatus, StateMachine, activity, open_runtime, workflow
from wayline.errors import MetadataError
from wayline.runtime import _metadata
from wayline.runtime._schedules import FIRE_KEY, SCHEDULE_KEY, SCHEDULED_AT_KEY
from wayline.runtime._versions import ALIAS_KEY, PINNED_KEY
from wayline.runtime.run import DETACHED_KEY, PARENT_KEY
from wayline.runtime.run._children import NOTIFY_KEY
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio


@activity(name="charge")
async def charge(amount: int) -> int:
    return amount


@workflow(name="order")
async def order(ctx: RunContext, amount: int) -> dict[str, Any]:
    seen = dict(ctx.metadata)
    await ctx.run(charge, amount)
    ctx.metadata["stage"] = "charged"
    ctx.metadata["amount"] = amount
    await ctx.wait_signal("ship")
    ctx.metadata["stage"] = "shipped"
    return {"seen": seen, "tags": list(ctx.tags)}


@workflow(name="bad_label")
async def bad_label(ctx: RunContext, key: str) -> None:
    ctx.metadata[key] = "x"


async def listed(rt: Any, **filters: Any) -> list[str]:
    return [info.run_id for info in await rt.list_runs(**filters)]


async def test_metadata_given_set_and_searched(db: str) -> None:
    async with open_runtime(db, workflows=[order], clock=VirtualClock()) as rt:
        a = await rt.start(order, 10, run_id="a", metadata={"customer": "c1", "correlation_id": "k-1"}, tags=["vip"])
        b = await rt.start(order, 20, run_id="b", metadata={"customer": "c2"}, tags=["vip", "eu", "vip"])
        await rt.start(order, 30, run_id="c", metadata={"customer": "c1"})
        assert await listed(rt, metadata={"customer": "c1"}) == ["a", "c"]
        assert await listed(rt, tag="vip") == ["a", "b"]
        assert await listed(rt, tag="eu", metadata={"customer": "c2"}) == ["b"]
        info = await rt.describe("b")
        # (the run may have set "stage" and "amount" already: it goes on meanwhile)
        assert info.metadata["customer"] == "c2" and info.tags == ("vip", "eu")
        # set by the workflow: searchable once checkpointed (the runs wait on "ship" now)
        await parked(rt, 3)
        assert await listed(rt, metadata={"stage": "charged"}) == ["a", "b", "c"]
        await rt.signal("a", "ship")
        assert (await a.result())["seen"] == {"customer": "c1", "correlation_id": "k-1"}
        await rt.signal("b", "ship")
        assert (await b.result())["tags"] == ["vip", "eu"]
        assert await listed(rt, metadata={"stage": "shipped"}) == ["a", "b"]
        assert await listed(rt, metadata={"stage": "charged"}) == ["c"]
        assert await listed(rt, metadata={"amount": 20}) == ["b"]
        assert await listed(rt, metadata={"customer": "c1"}, status=RunStatus.SUCCEEDED) == ["a"]
        assert (await rt.describe("a")).metadata == {
            "customer": "c1",
            "correlation_id": "k-1",
            "stage": "shipped",
            "amount": 10,
        }
    # the labels outlive the runtime: a new one on the same database finds them
    if db != ":memory:":
        async with open_runtime(db, workflows=[order], clock=VirtualClock()) as rt:
            assert await listed(rt, metadata={"customer": "c1"}, newest_first=True) == ["c", "a"]
            await rt.signal("c", "ship")
            assert (await rt.get_handle("c").result())["seen"] == {"customer": "c1"}
            assert await listed(rt, metadata={"stage": "shipped", "customer": "c1"}) == ["a", "c"]


async def test_bad_labels_are_refused_with_the_reason() -> None:
    async with open_runtime(":memory:", workflows=[order, bad_label], clock=VirtualClock()) as rt:
        with pytest.raises(MetadataError, match="'parent_run_id' is the runtime's own"):
            await rt.start(order, 1, metadata={"parent_run_id": "x"})
        with pytest.raises(MetadataError, match="'doc' is dict"):
            await rt.start(order, 1, metadata={"doc": {"a": 1}})
        with pytest.raises(MetadataError, match=r"write \['vip'\]"):
            await rt.start(order, 1, tags="vip")  # type: ignore[arg-type]
        with pytest.raises(MetadataError, match="non-empty string"):
            await rt.start(order, 1, tags=[""])
        with pytest.raises(MetadataError, match="only str, int, float and bool"):
            await rt.list_runs(metadata={"customer": ["c1"]})
        assert await rt.list_runs() == []  # nothing was started
        # from the workflow: the run fails, naming the key
        handle = await rt.start(bad_label, "wayline.segments", run_id="bad")
        with pytest.raises(Exception, match=r"'wayline\.segments' is the runtime's own"):
            await handle.result()
        assert (await rt.describe("bad")).error == "MetadataError"


def test_reserved_keys_are_the_runtime_s_own() -> None:
    assert {
        PARENT_KEY,
        DETACHED_KEY,
        NOTIFY_KEY,
        ALIAS_KEY,
        PINNED_KEY,
        SCHEDULE_KEY,
        SCHEDULED_AT_KEY,
        FIRE_KEY,
        "redrives",
    } == _metadata.RESERVED


def test_child_metadata_inherits_and_overrides() -> None:
    parent = {"correlation_id": "k", "customer": "c1", PARENT_KEY: "gp", "wayline.x": "1"}
    metadata, tags = _metadata.child_metadata(parent, ("vip",), {"customer": "c2"}, ["eu", "vip"])
    assert metadata == {"correlation_id": "k", "customer": "c2"}
    assert tags == ("vip", "eu")
    with pytest.raises(MetadataError):
        _metadata.child_metadata(parent, (), {"alias": "x"})


CHILD = StateMachine({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}, name="child")
PARENT = StateMachine(
    {
        "StartAt": "Call",
        "States": {
            "Call": {
                "Type": "Task",
                "Resource": "arn:aws:states:::states:startExecution.sync:2",
                "Parameters": {"StateMachineArn": "child", "Name": "kid", "Input": {}},
                "End": True,
            }
        },
    },
    name="parent",
)


async def test_child_runs_inherit_and_are_found(db: str) -> None:
    async with open_runtime(db, workflows=[PARENT, CHILD], clock=VirtualClock()) as rt:
        handle = await rt.start(PARENT, {}, run_id="p", metadata={"correlation_id": "k-7"}, tags=["batch"])
        await handle.result()
        child = await rt.describe("kid")
        assert child.metadata == {"correlation_id": "k-7", PARENT_KEY: "p"}
        assert child.tags == ("batch",)
        assert sorted(await listed(rt, metadata={"correlation_id": "k-7"})) == ["kid", "p"]
        assert await listed(rt, metadata={PARENT_KEY: "p"}) == ["kid"]


@workflow(name="kid_code")
async def kid_code(ctx: RunContext) -> dict[str, Any]:
    return dict(ctx.metadata)


@workflow(name="parent_code")
async def parent_code(ctx: RunContext) -> dict[str, Any]:
    ctx.metadata["stage"] = "fan-out"
    return await ctx.run_workflow(kid_code, run_id=f"{ctx.run_id}/kid")  # type: ignore[no-any-return]


async def test_code_child_workflows_inherit(db: str) -> None:
    async with open_runtime(db, workflows=[parent_code, kid_code], clock=VirtualClock()) as rt:
        seen = await (await rt.start(parent_code, run_id="pc", metadata={"correlation_id": "k-3"}, tags=["t"])).result()
        assert seen["correlation_id"] == "k-3" and seen["stage"] == "fan-out" and seen[PARENT_KEY] == "pc"
        assert (await rt.describe("pc/kid")).tags == ("t",)
        assert sorted(await listed(rt, metadata={"correlation_id": "k-3"})) == ["pc", "pc/kid"]
