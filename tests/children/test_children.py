"""Child workflows in code: ``ctx.start_workflow`` / ``ctx.run_workflow``, their handles, the
parent close policy, and code <-> state machine families."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest

from wayline import (
    RunCancelled,
    RunContext,
    RunFailed,
    RunStatus,
    StateMachine,
    activity,
    open_runtime,
    workflow,
)
from wayline.history import ChildEnded, ChildMessaged, ChildStarted
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio

ran: Counter[str] = Counter()


@pytest.fixture(autouse=True)
def _reset() -> None:
    ran.clear()


@activity(name="pack")
async def pack(item: str) -> str:
    ran[f"pack:{item}"] += 1
    return f"packed-{item}"


@workflow(name="ship")
async def ship(ctx: RunContext, order: dict[str, Any]) -> dict[str, Any]:
    ran["ship-body"] += 1
    boxes = [await ctx.run(pack, item) for item in order["items"]]
    return {"order": order["id"], "boxes": boxes}


@workflow(name="ship-waits")
async def ship_waits(ctx: RunContext, order: dict[str, Any]) -> str:
    label = await ctx.wait_signal("label")
    return f"{order['id']}:{label}"


@workflow(name="ship-fails")
async def ship_fails(ctx: RunContext, order: dict[str, Any]) -> None:
    raise ValueError(f"no stock for {order['id']}")


@workflow(name="order")
async def order_wf(ctx: RunContext, order: dict[str, Any]) -> dict[str, Any]:
    shipped = await ctx.run_workflow(ship, order)
    return {"shipped": shipped}


async def _history(rt: Any, run_id: str) -> list[Any]:
    return [e async for e in rt.history(run_id)]


async def test_run_workflow_starts_a_child_and_returns_its_output(tmp_path: Path) -> None:
    async with open_runtime(tmp_path / "w.db", workflows=[order_wf, ship], clock=VirtualClock()) as rt:
        out = await (await rt.start(order_wf, {"id": "o1", "items": ["a", "b"]}, run_id="o1")).result()
        child = await rt.describe("o1/0")  # the default child id: parent id and position
        events = await _history(rt, "o1")
    assert out == {"shipped": {"order": "o1", "boxes": ["packed-a", "packed-b"]}}
    assert child.status is RunStatus.SUCCEEDED and child.workflow == "ship"
    assert child.metadata["parent_run_id"] == "o1"
    started = [e for e in events if isinstance(e, ChildStarted)]
    ended = [e for e in events if isinstance(e, ChildEnded)]
    assert [(e.index, e.run_id, e.workflow) for e in started] == [(0, "o1/0", "ship")]
    assert [(e.index, e.run_id, e.status) for e in ended] == [(1, "o1/0", "SUCCEEDED")]


@workflow(name="signals-child")
async def signals_child(ctx: RunContext, order: dict[str, Any]) -> str:
    child = await ctx.start_workflow(ship_waits, order, run_id=f"{ctx.run_id}/ship")
    await ctx.run(pack, "note")
    await child.signal("label", "L-7")
    return str(await child.result())


async def test_a_handle_signals_its_child_and_awaits_it(tmp_path: Path) -> None:
    async with open_runtime(tmp_path / "w.db", workflows=[signals_child, ship_waits], clock=VirtualClock()) as rt:
        out = await (await rt.start(signals_child, {"id": "o2"}, run_id="p")).result()
        events = await _history(rt, "p")
    assert out == "o2:L-7"
    assert [(e.kind, e.name, e.run_id) for e in events if isinstance(e, ChildMessaged)] == [
        ("signal", "label", "p/ship")
    ]


@workflow(name="catches")
async def catches(ctx: RunContext, which: str) -> str:
    if which == "fails":
        try:
            await ctx.run_workflow(ship_fails, {"id": "x"})
        except RunFailed as exc:
            return f"failed: {exc.error}: {exc.cause}"
    child = await ctx.start_workflow(ship_waits, {"id": "y"})
    await child.cancel("no longer needed")
    try:
        await child.result()
    except RunCancelled as exc:
        return f"cancelled: {exc.reason}"
    return "unreachable"


@pytest.mark.parametrize(
    ("which", "expected"),
    [
        ("fails", "failed: ValueError: no stock for x"),
        ("cancel", "cancelled: no longer needed"),
    ],
)
async def test_a_child_that_fails_or_is_cancelled_raises_in_the_parent(which: str, expected: str) -> None:
    async with open_runtime(":memory:", workflows=[catches, ship_fails, ship_waits], clock=VirtualClock()) as rt:
        assert await (await rt.start(catches, which)).result() == expected


@workflow(name="leaves")
async def leaves(ctx: RunContext, policy: str) -> str:
    await ctx.start_workflow(ship_waits, {"id": policy}, run_id=f"{policy}-child", parent_close=policy)
    return "parent done"


@workflow(name="cleanup-child")
async def cleanup_child(ctx: RunContext, order: dict[str, Any]) -> str:
    from wayline import Cancelled

    try:
        await ctx.wait_signal("never")
    except Cancelled:
        await ctx.run(pack, "cleanup")  # request_cancel lets the body clean up; terminate does not
        raise
    return "never"


@workflow(name="leaves-cleanup")
async def leaves_cleanup(ctx: RunContext, policy: str) -> str:
    await ctx.start_workflow(cleanup_child, {"id": policy}, run_id=f"{policy}-child", parent_close=policy)
    return "parent done"


@pytest.mark.parametrize("policy", ["terminate", "request_cancel", "abandon"])
async def test_the_parent_close_policy_applies_when_the_parent_ends(policy: str) -> None:
    wfs = [leaves_cleanup, cleanup_child]
    async with open_runtime(":memory:", workflows=wfs, clock=VirtualClock()) as rt:
        assert await (await rt.start(leaves_cleanup, policy)).result() == "parent done"
        with anyio.fail_after(10):
            while policy != "abandon" and not (await rt.describe(f"{policy}-child")).status.finished:
                await rt.clock.sleep(0.1)
        child = await rt.describe(f"{policy}-child")
    if policy == "abandon":
        assert child.status is RunStatus.WAITING
        assert ran["pack:cleanup"] == 0
    else:
        assert child.status is RunStatus.CANCELLED
        assert ran["pack:cleanup"] == (1 if policy == "request_cancel" else 0)


async def test_a_parent_waiting_for_its_child_leaves_memory_and_is_woken_by_its_end(tmp_path: Path) -> None:
    @workflow(name="patient")
    async def patient(ctx: RunContext) -> str:
        child = await ctx.start_workflow(ship_waits, {"id": "z"}, run_id="kid")
        return str(await child.result())

    async with open_runtime(
        tmp_path / "w.db", workflows=[patient, ship_waits], clock=VirtualClock(), passivate_after=1
    ) as rt:
        handle = await rt.start(patient, run_id="mom")
        await rt.clock.sleep(5)
        assert rt.statistics().live_runs == 0  # both passivated
        info = await rt.describe("mom")
        assert info.waiting_for == ("child:kid",)
        await rt.signal("kid", "label", "L1")
        with anyio.fail_after(10):
            assert await handle.result() == "z:L1"


async def test_an_unregistered_child_workflow_raises_in_the_parent() -> None:
    @workflow(name="asks-unknown")
    async def asks_unknown(ctx: RunContext) -> str:
        try:
            await ctx.start_workflow("nope")
        except Exception as exc:
            return type(exc).__name__
        return "started?"

    async with open_runtime(":memory:", workflows=[asks_unknown], clock=VirtualClock()) as rt:
        assert await (await rt.start(asks_unknown)).result() == "WorkflowNotFoundError"


def test_bad_arguments_are_refused_before_anything_is_journaled() -> None:
    from wayline.runtime import RunContext as Ctx

    ctx = Ctx("r", "w", "1", VirtualClock())
    for call, match in [
        (lambda: ctx.start_workflow(ship, parent_close="explode"), "parent_close"),
        (lambda: ctx.start_workflow(ship, run_id="r"), "other than the parent's"),
        (lambda: ctx.start_workflow(42), "must be a @workflow"),
    ]:
        coro = call()
        with pytest.raises((ValueError, TypeError), match=match):
            coro.send(None)
        coro.close()


async def double(p: dict[str, Any]) -> dict[str, Any]:
    ran["double"] += 1
    return {"d": p["n"] * 2}


DOUBLER = StateMachine(
    {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "double", "End": True}}},
    name="doubler",
    resources={"double": double},
)


@workflow(name="code-parent")
async def code_parent(ctx: RunContext, n: int) -> int:
    out = await ctx.run_workflow(DOUBLER, {"n": n})
    return int(out["d"]) + 1


async def test_a_code_workflow_runs_a_state_machine_as_its_child(tmp_path: Path) -> None:
    async with open_runtime(tmp_path / "w.db", workflows=[code_parent, DOUBLER], clock=VirtualClock()) as rt:
        assert await (await rt.start(code_parent, 20, run_id="cp")).result() == 41
        kid = await rt.describe("cp/0")
    assert (kid.workflow, kid.status, kid.output) == ("doubler", RunStatus.SUCCEEDED, {"d": 40})


@workflow(name="tripler")
async def tripler(ctx: RunContext, p: dict[str, Any]) -> dict[str, Any]:
    return {"t": await ctx.run(pack, str(p["n"])) + "x3"}


ASL_PARENT = StateMachine(
    {
        "StartAt": "Call",
        "States": {
            "Call": {
                "Type": "Task",
                "Resource": "arn:aws:states:::states:startExecution.sync:2",
                "Parameters": {
                    "StateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:tripler",
                    "Input": {"n.$": "$.n"},
                },
                "OutputPath": "$.Output",
                "End": True,
            }
        },
    },
    name="asl-parent",
)


async def test_a_state_machine_runs_a_code_workflow_as_its_child(tmp_path: Path) -> None:
    async with open_runtime(tmp_path / "w.db", workflows=[ASL_PARENT, tripler], clock=VirtualClock()) as rt:
        out = await (await rt.start(ASL_PARENT, {"n": 3}, run_id="ap")).result()
        kids = [r for r in await rt.list_runs() if r.metadata.get("parent_run_id") == "ap"]
    assert out == {"t": "packed-3x3"}
    assert [(k.workflow, k.status) for k in kids] == [("tripler", RunStatus.SUCCEEDED)]


def test_a_state_machine_naming_an_unregistered_child_is_refused_at_open() -> None:
    from wayline.errors import ChildMachineNotFoundError
    from wayline.runtime._workflows import Registry

    with pytest.raises(ChildMachineNotFoundError):
        Registry([ASL_PARENT])
    Registry([ASL_PARENT, tripler])  # the code workflow is a valid target
