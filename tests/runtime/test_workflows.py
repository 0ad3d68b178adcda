"""Code-first workflows end to end: results, vars, history, idempotent start, errors."""

from __future__ import annotations

import asyncio
import gc
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from _support import event_types, until
from wayline import (
    PayloadError,
    RunCancelled,
    RunContext,
    RunFailed,
    RunInfo,
    RunNotFoundError,
    RunStatus,
    StateMachine,
    activity,
    open_runtime,
    workflow,
)
from wayline.errors import NotRegisteredError, RunConflictError, RuntimeClosedError, WorkflowNotFoundError
from wayline.persistence import RunStarted, RunSucceeded, StepStarted, StepSucceeded
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio

calls: Counter[str] = Counter()


@activity
async def add(a: int, b: int) -> int:
    calls["add"] += 1
    return a + b


@activity(name="double")
async def double(x: int) -> int:
    calls["double"] += 1
    return x * 2


@workflow(name="arith", version="3")
async def arith(ctx: RunContext, inp: dict[str, int]) -> dict[str, Any]:
    s = await ctx.run(add, inp["a"], inp["b"])
    ctx.vars["sum"] = s
    d = await ctx.run(double, s)
    ctx.vars["double"] = d
    return {"sum": s, "double": d, "run_id": ctx.run_id}


@workflow
async def no_input(ctx: RunContext) -> str:
    return "ok"


@workflow(name="other")
async def other(ctx: RunContext) -> None:
    return None


@pytest.fixture(autouse=True)
def _reset() -> None:
    calls.clear()


async def test_result_vars_and_describe(db: str) -> None:
    async with open_runtime(db, workflows=[arith, no_input], clock=VirtualClock()) as rt:
        handle = await rt.start(arith, {"a": 2, "b": 3}, run_id="r1")
        assert handle.run_id == "r1"
        assert await handle.result() == {"sum": 5, "double": 10, "run_id": "r1"}
        info = await rt.describe("r1")
        assert isinstance(info, RunInfo)
        assert info.status is RunStatus.SUCCEEDED
        assert info.workflow == "arith" and info.version == "3"
        assert info.input == {"a": 2, "b": 3}
        assert info.vars == {"sum": 5, "double": 10}
        assert info.output == {"sum": 5, "double": 10, "run_id": "r1"}
        assert info.error is None and info.cause is None
        assert info.steps == 2
        assert info.ended_at is not None and info.created_at <= info.ended_at
        assert await (await rt.start(no_input)).result() == "ok"
    assert calls == {"add": 1, "double": 1}


async def test_history_event_sequence(db: str) -> None:
    async with open_runtime(db, workflows=[arith], clock=VirtualClock()) as rt:
        await (await rt.start(arith, {"a": 1, "b": 1}, run_id="h")).result()
        events = [e async for e in rt.history("h")]
    assert event_types(events) == [
        "RunStarted",
        "StepStarted",
        "StepSucceeded",
        "StepStarted",
        "StepSucceeded",
        "RunSucceeded",
    ]
    started = events[0]
    assert isinstance(started, RunStarted)
    assert (started.workflow, started.version, started.input) == ("arith", "3", {"a": 1, "b": 1})
    steps = [e for e in events if isinstance(e, StepSucceeded)]
    assert [(e.step, e.index, e.attempt, e.result) for e in steps] == [("add", 0, 1, 2), ("double", 1, 1, 4)]
    assert [e.step for e in events if isinstance(e, StepStarted)] == ["add", "double"]
    assert isinstance(events[-1], RunSucceeded) and events[-1].output["double"] == 4
    assert [e.ts for e in events] == sorted(e.ts for e in events)


async def test_start_is_idempotent_on_run_id(db: str) -> None:
    async with open_runtime(db, workflows=[arith], clock=VirtualClock()) as rt:
        h1 = await rt.start(arith, {"a": 1, "b": 2}, run_id="same")
        out = await h1.result()
        h2 = await rt.start(arith, {"a": 100, "b": 200}, run_id="same")
        assert h2.run_id == "same"
        assert await h2.result() == out  # the existing run, not a new one on new input
        assert (await rt.describe("same")).input == {"a": 1, "b": 2}
        assert len(await rt.list_runs()) == 1
    assert calls == {"add": 1, "double": 1}


async def test_start_while_running_is_idempotent_too(db: str) -> None:
    gate, entered = asyncio.Event(), asyncio.Event()

    @activity(name="gate")
    async def wait_gate() -> str:
        calls["gate"] += 1
        entered.set()
        await gate.wait()
        return "open"

    @workflow(name="gated")
    async def gated(ctx: RunContext) -> str:
        return await ctx.run(wait_gate)

    async with open_runtime(db, workflows=[gated]) as rt:
        h1 = await rt.start(gated, run_id="g")
        handles = [await rt.start(gated, run_id="g") for _ in range(5)]
        await entered.wait()
        gate.set()
        results = await asyncio.gather(h1.result(), *(h.result() for h in handles))
    assert results == ["open"] * 6
    assert calls["gate"] == 1


async def test_run_conflict_for_another_workflow_on_an_existing_id(db: str) -> None:
    async with open_runtime(db, workflows=[arith, other], clock=VirtualClock()) as rt:
        await (await rt.start(arith, {"a": 1, "b": 1}, run_id="x")).result()
        with pytest.raises(RunConflictError) as info:
            await rt.start(other, run_id="x")
        assert info.value.run_id == "x"
        assert "'arith'" in str(info.value) and "'other'" in str(info.value)


async def test_unknown_run_id_raises_run_not_found_everywhere(db: str) -> None:
    async with open_runtime(db, workflows=[arith], clock=VirtualClock()) as rt:
        with pytest.raises(RunNotFoundError) as info:
            await rt.describe("nope")
        assert info.value.run_id == "nope"
        with pytest.raises(RunNotFoundError):
            [e async for e in rt.history("nope")]
        with pytest.raises(RunNotFoundError):
            await rt.cancel("nope", "why")
        with pytest.raises(RunNotFoundError):
            await rt.get_handle("nope").result()


async def test_unregistered_workflow_raises_workflow_not_found(db: str) -> None:
    async with open_runtime(db, workflows=[arith], clock=VirtualClock()) as rt:
        with pytest.raises(WorkflowNotFoundError) as info:
            await rt.start(other)
        assert info.value.name == "other"
        assert "'arith'" in str(info.value)  # lists what is registered
        with pytest.raises(WorkflowNotFoundError):
            await rt.start("no-such-name")
        assert await rt.list_runs() == []


async def test_exception_in_the_runtime_block_propagates_unwrapped(db: str) -> None:
    with pytest.raises(RunFailed):
        async with open_runtime(db, workflows=[raises], clock=VirtualClock()) as rt:
            await (await rt.start(raises)).result()


async def test_undecorated_function_is_rejected() -> None:
    async def plain(ctx: RunContext) -> None: ...

    with pytest.raises(NotRegisteredError):
        async with open_runtime(":memory:", workflows=[plain]):  # type: ignore[list-item]
            pass


async def test_unencodable_input_raises_payload_error_and_stores_nothing(db: str) -> None:
    async with open_runtime(db, workflows=[arith], clock=VirtualClock()) as rt:
        with pytest.raises(PayloadError) as info:
            await rt.start(arith, {"a": object()}, run_id="bad")
        assert info.value.run_id == "bad"
        with pytest.raises(RunNotFoundError):
            await rt.describe("bad")


@activity(name="unstorable")
async def unstorable() -> object:
    calls["unstorable"] += 1
    return object()


@workflow(name="stores_junk")
async def stores_junk(ctx: RunContext) -> str:
    await ctx.run(unstorable)
    return "unreachable"


@workflow(name="catches_junk")
async def catches_junk(ctx: RunContext) -> dict[str, Any]:
    from wayline import ActivityError

    try:
        await ctx.run(unstorable)
    except ActivityError as exc:
        return {"step": exc.step, "error": exc.error}
    return {}


async def test_unencodable_step_result_fails_the_step_with_payload_error(db: str) -> None:
    async with open_runtime(db, workflows=[stores_junk, catches_junk], clock=VirtualClock()) as rt:
        with pytest.raises(RunFailed) as info:
            await (await rt.start(stores_junk, run_id="j1")).result()
        assert info.value.error == "PayloadError"
        assert info.value.run_id == "j1"
        assert (await rt.describe("j1")).status is RunStatus.FAILED
        caught = await (await rt.start(catches_junk, run_id="j2")).result()
        assert caught == {"step": "unstorable", "error": "PayloadError"}
    assert calls["unstorable"] == 2  # not retried


@workflow(name="returns_junk")
async def returns_junk(ctx: RunContext) -> object:
    return object()


async def test_unencodable_workflow_output_fails_the_run(db: str) -> None:
    async with open_runtime(db, workflows=[returns_junk], clock=VirtualClock()) as rt:
        with pytest.raises(RunFailed) as info:
            await (await rt.start(returns_junk, run_id="o")).result()
        assert info.value.error == "PayloadError"


@workflow(name="raises")
async def raises(ctx: RunContext) -> None:
    await ctx.run(add, 1, 1)
    raise KeyError("missing thing")


async def test_exception_in_the_body_fails_the_run(db: str) -> None:
    async with open_runtime(db, workflows=[raises], clock=VirtualClock()) as rt:
        with pytest.raises(RunFailed) as info:
            await (await rt.start(raises, run_id="e")).result()
        assert info.value.error == "KeyError"
        assert "missing thing" in (info.value.cause or "")
        info2 = await rt.describe("e")
        assert (info2.status, info2.error) == (RunStatus.FAILED, "KeyError")
        events = [e async for e in rt.history("e")]
        assert event_types(events)[-1] == "RunFailed"


async def test_list_runs_filters_by_status_and_workflow(db: str) -> None:
    async with open_runtime(db, workflows=[arith, raises, no_input], clock=VirtualClock()) as rt:
        await (await rt.start(arith, {"a": 1, "b": 1}, run_id="a1")).result()
        await (await rt.start(no_input, run_id="n1")).result()
        with pytest.raises(RunFailed):
            await (await rt.start(raises, run_id="f1")).result()
        ids = lambda infos: sorted(i.run_id for i in infos)  # noqa: E731
        assert ids(await rt.list_runs()) == ["a1", "f1", "n1"]
        assert ids(await rt.list_runs(status=RunStatus.SUCCEEDED)) == ["a1", "n1"]
        assert ids(await rt.list_runs(status="failed")) == ["f1"]
        assert ids(await rt.list_runs(status=["FAILED", RunStatus.SUCCEEDED], workflow="arith")) == ["a1"]
        assert ids(await rt.list_runs(workflow="raises")) == ["f1"]
        assert await rt.list_runs(status=RunStatus.RUNNING) == []
        with pytest.raises(ValueError, match="unknown run status"):
            await rt.list_runs(status="bogus")


async def test_results_survive_reopening_the_database(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    async with open_runtime(path, workflows=[arith], clock=VirtualClock()) as rt:
        await (await rt.start(arith, {"a": 4, "b": 4}, run_id="p")).result()
    async with open_runtime(path, workflows=[arith], clock=VirtualClock()) as rt:
        assert await rt.get_handle("p").result() == {"sum": 8, "double": 16, "run_id": "p"}
        assert (await rt.describe("p")).vars == {"sum": 8, "double": 16}
        assert len([e async for e in rt.history("p")]) == 6
    assert calls == {"add": 1, "double": 1}


async def test_runtime_is_unusable_after_close(db: str) -> None:
    async with open_runtime(db, workflows=[arith], clock=VirtualClock()) as rt:
        pass
    with pytest.raises(RuntimeClosedError):
        await rt.start(arith, {"a": 1, "b": 1})


async def test_plain_async_function_as_a_step(db: str) -> None:
    async def helper(x: int) -> int:
        return x + 1

    @workflow(name="plain_step")
    async def plain_step(ctx: RunContext) -> int:
        return await ctx.run(helper, 41)

    async with open_runtime(db, workflows=[plain_step], clock=VirtualClock()) as rt:
        assert await (await rt.start(plain_step, run_id="ps")).result() == 42
        steps = [e for e in [e async for e in rt.history("ps")] if isinstance(e, StepSucceeded)]
    assert steps[0].step.endswith("helper")


async def test_awaiting_foreign_io_in_the_body_fails_with_a_clear_error(db: str) -> None:
    @workflow(name="bad_await")
    async def bad_await(ctx: RunContext) -> None:
        await asyncio.sleep(0.01)

    async with open_runtime(db, workflows=[bad_await], clock=VirtualClock()) as rt:
        with pytest.raises(RunFailed) as info:
            await (await rt.start(bad_await, run_id="ba")).result()
    assert info.value.error == "TypeError"
    assert "@activity" in (info.value.cause or "")


async def test_concurrent_starts_of_one_run_id_start_it_once(db: str) -> None:
    async with open_runtime(db, workflows=[arith], clock=VirtualClock()) as rt:
        handles = await asyncio.gather(*(rt.start(arith, {"a": 1, "b": 1}, run_id="dup") for _ in range(10)))
        results = await asyncio.gather(*(h.result() for h in handles))
        assert len(await rt.list_runs()) == 1
    assert results == [{"sum": 2, "double": 4, "run_id": "dup"}] * 10
    assert calls == {"add": 1, "double": 1}


async def test_starting_another_definition_under_a_registered_name_says_so() -> None:
    from wayline.errors import WorkflowNotFoundError

    @workflow(name="twin")
    async def first(ctx: RunContext) -> int:
        return 1

    @workflow(name="twin")
    async def second(ctx: RunContext) -> int:
        return 2

    async with open_runtime(":memory:", workflows=[first]) as rt:
        with pytest.raises(WorkflowNotFoundError, match="another definition is registered"):
            await rt.start(second)
        assert await (await rt.start(first)).result() == 1


@workflow(name="failing")
async def failing(ctx: RunContext) -> None:
    await ctx.run(add, 1, 2)
    raise ValueError("bad order")


@workflow(name="parked")
async def parked(ctx: RunContext) -> Any:
    return await ctx.wait_signal("never")


async def test_an_ended_run_is_freed_without_the_cycle_collector(db: str) -> None:
    # A finished run must not linger as cyclic garbage until a full collection: with
    # thousands of runs ending, that garbage is what the collector spends its time on.
    async def add_event(event: dict[str, int]) -> int:
        return await add(event["a"], event["b"])

    machine = StateMachine(
        {"StartAt": "Add", "States": {"Add": {"Type": "Task", "Resource": "add", "End": True}}},
        name="machine",
        resources={"add": add_event},
    )
    async with open_runtime(db, workflows=[arith, failing, parked, machine]) as rt:
        gc.collect()
        gc.disable()
        try:
            await (await rt.start(arith, {"a": 1, "b": 2}, run_id="ok")).result()
            assert await (await rt.start(machine, {"a": 1, "b": 2}, run_id="asl")).result() == 3
            with pytest.raises(RunFailed):
                await (await rt.start(failing, run_id="failed")).result()
            waiting = await rt.start(parked, run_id="cancelled")
            await rt.cancel("cancelled")  # taken in once the body waits (its mailbox is in order)
            with pytest.raises(RunCancelled):
                await waiting.result()
            # The actors' tasks end just after their results are delivered.
            await until(lambda: rt.statistics().live_runs == 0)
            # The actor, and the run's state and the body's context (which hold each other).
            kinds = {"RunActor", "RunState", "RunContext", "Journal"}
            live = [o for o in gc.get_objects() if type(o).__name__ in kinds]
            assert live == []
        finally:
            gc.enable()
