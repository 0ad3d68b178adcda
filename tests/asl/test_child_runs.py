"""Child executions of state machines as durable child runs of the runtime.

``states:startExecution`` (``.sync``, ``.sync:2`` and fire-and-forget) and the items of a
distributed Map run as runs of their own: in the store with a link to their parent, with
their own checkpoints and history, re-attached (never started twice) by a parent that
restarts, and cancelled with the parent that waits for them.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest

from _support import idle, kill_9_when
from wayline import RunCancelled, RunFailed, RunStatus, StateMachine, StatesError, WaylineError, open_runtime
from wayline.errors import ChildMachineNotFoundError, WorkflowNotFoundError
from wayline.persistence import CancelMessage, Custom, SQLiteStore
from wayline.runtime.asl import LocalHost
from wayline.testing import FaultInjectingStore, SimulatedCrash, VirtualClock

pytestmark = pytest.mark.anyio

ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:"
START = "arn:aws:states:::states:startExecution"
calls: Counter[str] = Counter()


@pytest.fixture(autouse=True)
def _reset() -> None:
    calls.clear()


async def double(p: dict[str, Any]) -> dict[str, Any]:
    calls[f"double:{p['n']}"] += 1
    if p.get("fail"):
        raise StatesError("Broke", f"cannot double {p['n']}")
    return {"d": p["n"] * 2}


def child_machine() -> StateMachine:
    return StateMachine(
        {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "double", "End": True}}},
        name="child",
        resources={"double": double},
    )


def caller(resource: str, retry: list[Any] | None = None, **parameters: Any) -> StateMachine:
    """A parent whose one Task starts the machine "child" through ``resource``."""
    params = {"StateMachineArn": f"{ARN}child", "Input": {"n.$": "$.n", "fail.$": "$.fail"}, **parameters}
    task = {"Type": "Task", "Resource": resource, "Parameters": params, "End": True}
    if retry:
        task["Retry"] = retry
    return StateMachine({"StartAt": "Call", "States": {"Call": task}}, name="parent")


async def children_of(rt: Any, parent: str) -> list[Any]:
    return [r for r in await rt.list_runs() if r.metadata.get("parent_run_id") == parent]


@pytest.mark.parametrize("resource", [f"{START}.sync:2", f"{START}.sync"])
async def test_a_sync_child_is_a_run_of_its_own_and_the_output_keeps_its_shape(tmp_path: Path, resource: str) -> None:
    parent, child = caller(resource), child_machine()
    async with open_runtime(tmp_path / "c.db", workflows=[parent, child], clock=VirtualClock()) as rt:
        out = await (await rt.start(parent, {"n": 4, "fail": False}, run_id="p")).result()
        kids = await children_of(rt, "p")
        history = [e.name for e in [e async for e in rt.history(kids[0].run_id)] if isinstance(e, Custom)]
        parent_history = [e.name for e in [e async for e in rt.history("p")] if isinstance(e, Custom)]
    [kid] = kids
    assert (kid.workflow, kid.status, kid.output) == ("child", RunStatus.SUCCEEDED, {"d": 8})
    assert kid.input == {"n": 4, "fail": False}
    assert out["Name"] == kid.run_id and out["ExecutionArn"].endswith(f":child:{kid.run_id}")
    # The child's own history, apart from the parent's.
    assert history[0] == "ExecutionStarted" and "TaskSucceeded" in history and history[-1] == "ExecutionSucceeded"
    assert parent_history.count("TaskStateEntered") == 1 and "TaskSucceeded" in parent_history
    # The same shape as the in-memory host (which runs the child inline) gives.
    local_parent = caller(resource)
    host = LocalHost(local_parent, machines={"child": child_machine()}, start_time=1_700_000_000.0)
    expected = await host.execute(local_parent, {"n": 4, "fail": False})
    assert out.keys() == expected.keys()
    assert {k: out[k] for k in ("Status", "Input", "Output")} == {k: expected[k] for k in ("Status", "Input", "Output")}
    assert calls == {"double:4": 2}  # once here, once on the in-memory host


async def test_a_failed_sync_child_fails_the_task_with_states_task_failed(tmp_path: Path) -> None:
    parent, child = caller(f"{START}.sync:2"), child_machine()
    async with open_runtime(tmp_path / "f.db", workflows=[parent, child], clock=VirtualClock()) as rt:
        with pytest.raises(RunFailed) as info:
            await (await rt.start(parent, {"n": 3, "fail": True}, run_id="p")).result()
        [kid] = await children_of(rt, "p")
    assert info.value.error == "States.TaskFailed"
    described = json.loads(info.value.cause or "")
    assert (described["Status"], described["Error"], described["Cause"]) == ("FAILED", "Broke", "cannot double 3")
    assert (kid.status, kid.error, kid.cause) == (RunStatus.FAILED, "Broke", "cannot double 3")


async def test_a_retried_sync_task_starts_a_new_child_per_attempt() -> None:
    async def fails_first(p: dict[str, Any]) -> Any:
        return await double({**p, "fail": calls[f"double:{p['n']}"] == 0})

    flaky = StateMachine(
        {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "double", "End": True}}},
        name="child",
        resources={"double": fails_first},
    )
    parent = caller(f"{START}.sync:2", [{"ErrorEquals": ["States.TaskFailed"]}], Input={"n.$": "$.n"})
    async with open_runtime(":memory:", workflows=[parent, flaky], clock=VirtualClock()) as rt:
        out = await (await rt.start(parent, {"n": 6}, run_id="p")).result()
        kids = {k.run_id: k.status for k in await children_of(rt, "p")}
    assert out["Output"] == {"d": 12}
    assert kids == {"p-Call-2-0": RunStatus.FAILED, "p-Call-2-1": RunStatus.SUCCEEDED}


async def test_the_name_a_state_passes_is_the_child_run_id_and_starts_it_once() -> None:
    parent, child = caller(f"{START}.sync:2", **{"Name.$": "$.name"}), child_machine()
    async with open_runtime(":memory:", workflows=[parent, child], clock=VirtualClock()) as rt:
        first = await (await rt.start(parent, {"n": 5, "fail": False, "name": "order-5"}, run_id="p1")).result()
        # Another parent naming the same execution gets that execution, as AWS does for a
        # StartExecution repeated with the same name and input.
        second = await (await rt.start(parent, {"n": 5, "fail": False, "name": "order-5"}, run_id="p2")).result()
        info = await rt.describe("order-5")
    assert first["Output"] == second["Output"] == {"d": 10}
    assert info.workflow == "child" and info.metadata["parent_run_id"] == "p1"
    assert calls == {"double:5": 1}


async def test_a_name_taken_by_another_workflow_fails_with_execution_already_exists() -> None:
    parent, child = caller(f"{START}.sync:2", Name="taken"), child_machine()
    other = StateMachine({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}, name="other")
    async with open_runtime(":memory:", workflows=[parent, child, other], clock=VirtualClock()) as rt:
        await (await rt.start(other, {}, run_id="taken")).result()
        with pytest.raises(RunFailed) as info:
            await (await rt.start(parent, {"n": 1, "fail": False}, run_id="p")).result()
    assert info.value.error == "StepFunctions.ExecutionAlreadyExistsException"
    assert "'taken'" in (info.value.cause or "")


async def test_fire_and_forget_start_execution_starts_a_detached_child() -> None:
    parent, child = caller(START), child_machine()
    async with open_runtime(":memory:", workflows=[parent, child], clock=VirtualClock()) as rt:
        out = await (await rt.start(parent, {"n": 2, "fail": True}, run_id="p")).result()
        [kid] = await children_of(rt, "p")
        with pytest.raises(RunFailed) as info:
            await rt.get_handle(kid.run_id).result()
    # The parent does not wait, so the child's failure is not the parent's.
    assert set(out) == {"ExecutionArn", "StartDate"} and out["ExecutionArn"].endswith(kid.run_id)
    assert kid.metadata == {"parent_run_id": "p", "detached": True}
    assert info.value.error == "Broke"


def test_a_literal_arn_of_an_unregistered_machine_is_refused_when_the_runtime_opens() -> None:
    parent = caller(f"{START}.sync:2")

    async def main() -> None:
        async with open_runtime(":memory:", workflows=[parent]):
            pass

    with pytest.raises(ChildMachineNotFoundError) as info:
        anyio.run(main)
    err = info.value
    assert isinstance(err, WorkflowNotFoundError) and isinstance(err, WaylineError)
    assert (err.machine, err.state, err.name) == ("parent", "Call", f"{ARN}child")
    assert "state 'Call'" in str(err) and "open_runtime(..., workflows=[...])" in str(err)


async def test_a_computed_arn_of_an_unregistered_machine_fails_the_run_precisely() -> None:
    parent = StateMachine(
        {"StartAt": "Call", "States": {"Call": {
            "Type": "Task", "Resource": f"{START}.sync:2",
            "Parameters": {"StateMachineArn.$": "$.target"}, "End": True}}},
        name="parent",
    )
    async with open_runtime(":memory:", workflows=[parent, child_machine()], clock=VirtualClock()) as rt:
        with pytest.raises(RunFailed) as info:
            await (await rt.start(parent, {"target": f"{ARN}missing"}, run_id="p")).result()
        assert await children_of(rt, "p") == []
    assert info.value.error == "States.Runtime"
    cause = info.value.cause or ""
    assert f"'{ARN}missing'" in cause and "Registered: 'child', 'parent'" in cause


# ----------------------------------------------------------------------------- distributed Map


def distributed(
    *,
    concurrency: int = 0,
    extra: dict[str, Any] | None = None,
    item: str = "work",
    resources: dict[str, Any] | None = None,
) -> StateMachine:
    async def work(n: int) -> int:
        calls[f"work:{n}"] += 1
        if n < 0:
            raise StatesError("Negative", str(n))
        return n * 10

    return StateMachine(
        {"StartAt": "M", "States": {"M": {
            "Type": "Map", "MaxConcurrency": concurrency, **(extra or {}),
            "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED"}, "StartAt": "W",
                              "States": {"W": {"Type": "Task", "Resource": item, "End": True}}},
            "End": True}}},
        name="fan",
        resources={"work": work, **(resources or {})},
    )


async def test_distributed_map_items_are_child_runs(tmp_path: Path) -> None:
    sm = distributed()
    async with open_runtime(tmp_path / "m.db", workflows=[sm], clock=VirtualClock()) as rt:
        out = await (await rt.start(sm, [1, 2, 3], run_id="p")).result()
        kids = await children_of(rt, "p")
        parent_history = [e.name for e in [e async for e in rt.history("p")] if isinstance(e, Custom)]
    assert out == [10, 20, 30]
    assert sorted(k.run_id for k in kids) == ["p-M-2-0-0", "p-M-2-0-1", "p-M-2-0-2"]
    assert {k.workflow for k in kids} == {"fan/M"} and {k.status for k in kids} == {RunStatus.SUCCEEDED}
    assert sorted(k.output for k in kids) == [10, 20, 30]
    assert "MapRunStarted" in parent_history and "TaskStateEntered" not in parent_history


async def test_item_batches_are_child_runs_too() -> None:
    sm = distributed(extra={"ItemBatcher": {"MaxItemsPerBatch": 2}}, item="batch", resources={"batch": _echo})
    async with open_runtime(":memory:", workflows=[sm], clock=VirtualClock()) as rt:
        out = await (await rt.start(sm, [1, 2, 3, 4, 5], run_id="p")).result()
        kids = await children_of(rt, "p")
    assert out == [{"Items": [1, 2]}, {"Items": [3, 4]}, {"Items": [5]}]
    assert sorted((k.input for k in kids), key=json.dumps) == out


async def _echo(p: Any) -> Any:
    return p


async def test_max_concurrency_limits_the_children_running_at_once() -> None:
    running, peak = [0], [0]

    async def slow(n: int) -> int:
        running[0] += 1
        peak[0] = max(peak[0], running[0])
        for _ in range(50):  # long enough for the others to start, if the limit let them
            await asyncio.sleep(0)
        running[0] -= 1
        return n

    sm = distributed(concurrency=3, item="slow", resources={"slow": slow})
    async with open_runtime(":memory:", workflows=[sm], clock=VirtualClock()) as rt:
        handle = await rt.start(sm, list(range(12)), run_id="p")
        live_peak = 0
        while not (await rt.describe("p")).status.finished:
            live = [k for k in await children_of(rt, "p") if not k.status.finished]
            live_peak = max(live_peak, len(live))
            await asyncio.sleep(0)
        assert await handle.result() == list(range(12))
    assert peak[0] == 3  # the items ran three at a time, never more
    assert 1 <= live_peak <= 3  # and at most three child runs were unfinished at once


async def test_tolerated_failures_of_child_runs() -> None:
    sm = distributed(extra={"ToleratedFailureCount": 1})
    async with open_runtime(":memory:", workflows=[sm], clock=VirtualClock()) as rt:
        out = await (await rt.start(sm, [1, -2, 3], run_id="ok")).result()
        with pytest.raises(RunFailed) as info:
            await (await rt.start(sm, [-1, -2, 3], run_id="bad")).result()
        failed = [k for k in await children_of(rt, "bad") if k.status is RunStatus.FAILED]
    assert out == [10, {"Error": "Negative", "Cause": "-2"}, 30]
    assert info.value.error == "States.ExceedToleratedFailureThreshold"
    assert len(failed) == 2 and {k.error for k in failed} == {"Negative"}


async def test_a_distributed_map_of_10000_items(tmp_path: Path) -> None:
    sm = StateMachine(
        {"StartAt": "M", "States": {"M": {
            "Type": "Map", "ItemSelector": {"i.$": "$$.Map.Item.Index"},
            "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED"}, "StartAt": "P",
                              "States": {"P": {"Type": "Pass", "End": True}}},
            "End": True}}},
        name="big",
    )
    async with open_runtime(tmp_path / "big.db", workflows=[sm], clock=VirtualClock()) as rt:
        out = await (await rt.start(sm, list(range(10_000)), run_id="p")).result()
        kids = await rt.list_runs(workflow="big/M", status=RunStatus.SUCCEEDED)
    assert out == [{"i": i} for i in range(10_000)]
    assert len(kids) == 10_000 and all(k.metadata["parent_run_id"] == "p" for k in kids)


# ----------------------------------------------------------------------------- restarts


def nested(gate: asyncio.Event | None = None) -> tuple[StateMachine, StateMachine]:
    """A parent that calls "child" with .sync:2, then fans out over its items."""

    async def work(n: int) -> int:
        calls[f"work:{n}"] += 1
        if gate is not None:
            await gate.wait()
        return n + 100

    parent = StateMachine(
        {"StartAt": "Call", "States": {
            "Call": {"Type": "Task", "Resource": f"{START}.sync:2", "ResultSelector": {"d.$": "$.Output.d"},
                     "Parameters": {"StateMachineArn": f"{ARN}child", "Input": {"n.$": "$.n"}},
                     "ResultPath": "$.call", "Next": "Fan"},
            "Fan": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 2, "ResultPath": "$.items",
                    "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED"}, "StartAt": "W",
                                      "States": {"W": {"Type": "Task", "Resource": "work", "End": True}}},
                    "End": True}}},
        name="parent",
        resources={"work": work},
    )
    return parent, child_machine()


@pytest.mark.parametrize("when", ["before", "after"])
async def test_a_crash_at_any_write_resumes_without_rerunning_finished_children(tmp_path: Path, when: str) -> None:
    data = {"n": 7, "items": [1, 2, 3, 4]}
    counter = FaultInjectingStore(SQLiteStore(tmp_path / "clean.db"))
    async with open_runtime(counter, workflows=list(nested()), clock=VirtualClock()) as rt:
        expected = await (await rt.start("parent", data, run_id="p")).result()
    writes, clean = counter.writes, dict(calls)
    assert expected == {"n": 7, "call": {"d": 14}, "items": [101, 102, 103, 104]}
    assert writes > 20
    for n in range(1, writes + 1):
        calls.clear()
        path = tmp_path / f"crash-{when}-{n}.db"
        store = FaultInjectingStore(SQLiteStore(path), crash_at=n, when=when)
        try:
            async with open_runtime(store, workflows=list(nested()), clock=VirtualClock()) as rt:
                await (await rt.start("parent", data, run_id="p")).result()
        except (SimulatedCrash, BaseExceptionGroup):
            pass
        else:
            # How many writes the run makes varies with timing (36 mostly, 38 or 40 under load,
            # measured by counting them in the clean run), so a later n may not be reached this
            # time; every write that is reached crashes.
            assert store.writes < n, (n, when, store.writes)
            continue
        before = Counter(calls)
        # What the crash left finished: those children must not run again.
        inspect = SQLiteStore(path)
        await inspect.start()
        finished = [r for r in await inspect.list_runs(statuses=[RunStatus.SUCCEEDED]) if r.run_id != "p"]
        await inspect.close()
        async with open_runtime(path, workflows=list(nested()), clock=VirtualClock()) as rt:
            if await rt.store.get_run("p") is None:  # crashed before the run was created
                await rt.start("parent", data, run_id="p")
            assert await rt.get_handle("p").result() == expected
            kids = await children_of(rt, "p")
        assert len(kids) == 5, (n, when, [k.run_id for k in kids])  # no child started twice
        for rec in finished:
            key = "double:7" if rec.workflow == "child" else f"work:{rec.input}"
            assert calls[key] == before[key], (n, when, rec.run_id)
        for key, count in calls.items():
            # at least once, and at most the one call in flight at the crash again
            assert clean[key] <= count <= clean[key] + 1, (n, when, dict(calls))


async def test_a_restarted_parent_reattaches_to_its_running_children(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    gate = asyncio.Event()
    parent, child = nested(gate)
    clock = VirtualClock()
    async with open_runtime(path, workflows=[parent, child], clock=clock) as rt:
        await rt.start(parent, {"n": 1, "items": [1, 2, 3]}, run_id="p")
        await idle(rt)  # the items run, and block on the gate
    # Closed with the parent waiting on two running children: all three runs are unfinished.
    assert calls == {"double:1": 1, "work:1": 1, "work:2": 1}
    gate.set()
    async with open_runtime(path, workflows=list(nested(gate)), clock=VirtualClock()) as rt:
        out = await rt.get_handle("p").result()
        kids = await children_of(rt, "p")
    assert out["items"] == [101, 102, 103]
    assert len(kids) == 4
    # The running children resumed (their task in flight ran again); the finished one did not.
    assert calls == {"double:1": 1, "work:1": 2, "work:2": 2, "work:3": 1}


async def test_a_redriven_parent_starts_only_the_failed_children_again(tmp_path: Path) -> None:
    broken = {3}

    async def work(n: int) -> int:
        calls[f"work:{n}"] += 1
        if n in broken:
            raise StatesError("Flaky", str(n))
        return n

    sm = distributed(concurrency=1, resources={"work": work})
    async with open_runtime(tmp_path / "r.db", workflows=[sm], clock=VirtualClock()) as rt:
        with pytest.raises(RunFailed) as info:
            await (await rt.start(sm, [1, 2, 3, 4], run_id="p")).result()
        assert info.value.error == "States.ExceedToleratedFailureThreshold"
        broken.clear()
        assert await (await rt.redrive("p")).result() == [1, 2, 3, 4]
        kids = {k.run_id: k.status for k in await children_of(rt, "p")}
    # The redrive runs the failed item as a new child run, and no finished item again.
    assert kids == {
        "p-M-2-0-0": RunStatus.SUCCEEDED,
        "p-M-2-0-1": RunStatus.SUCCEEDED,
        "p-M-2-0-2": RunStatus.FAILED,
        "p-M-2-r1-0-2": RunStatus.SUCCEEDED,
        "p-M-2-r1-0-3": RunStatus.SUCCEEDED,
    }
    assert calls == {"work:1": 1, "work:2": 1, "work:3": 2, "work:4": 1}


# ----------------------------------------------------------------------------- cancel


async def test_cancelling_the_parent_cancels_the_children_it_waits_for() -> None:
    gate = asyncio.Event()
    parent, child = nested(gate)
    fire_and_forget = StateMachine(
        {"StartAt": "Go", "States": {
            "Go": {"Type": "Task", "Resource": START, "ResultPath": None,
                   "Parameters": {"StateMachineArn": f"{ARN}parent", "Input": {"n": 2, "items": [5]}}, "Next": "Wait"},
            "Wait": {"Type": "Wait", "Seconds": 3600, "End": True}}},
        name="launcher",
    )
    async with open_runtime(":memory:", workflows=[parent, child, fire_and_forget], clock=VirtualClock()) as rt:
        handle = await rt.start(parent, {"n": 1, "items": [1, 2, 3]}, run_id="p")
        await idle(rt)  # the items run, and block on the gate
        await rt.cancel("p", "not needed")
        with pytest.raises(RunCancelled):
            await handle.result()
        kids = {k.run_id: k for k in await children_of(rt, "p")}
        # A run started without .sync is not the parent's to stop.
        launcher = await rt.start(fire_and_forget, {}, run_id="l")
        await idle(rt)  # the child started, and waits its hour
        await rt.cancel("l")
        with pytest.raises(RunCancelled):
            await launcher.result()
        [detached] = await children_of(rt, "l")
        gate.set()
        assert (await rt.get_handle(detached.run_id).result())["items"] == [105]
    assert {k.status for k in kids.values()} == {RunStatus.SUCCEEDED, RunStatus.CANCELLED}
    cancelled = [k for k in kids.values() if k.status is RunStatus.CANCELLED]
    assert len(cancelled) == 2 and {k.cause for k in cancelled} == {"not needed"}
    assert calls["work:3"] == 0  # the item not started yet never starts


async def test_a_cancel_accepted_before_a_crash_cancels_parent_and_children_on_restart(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    gate = asyncio.Event()
    parent, child = nested(gate)
    async with open_runtime(path, workflows=[parent, child], clock=VirtualClock()) as rt:
        await rt.start(parent, {"n": 1, "items": [1, 2]}, run_id="p")
        await idle(rt)  # the items run, and block on the gate
        # What rt.cancel commits first; the process dies before the run applies it.
        await rt.store.append_inbox("p", CancelMessage(reason="gone", ts=rt.clock.time()))
    async with open_runtime(path, workflows=list(nested(gate)), clock=VirtualClock()) as rt:
        with pytest.raises(RunCancelled) as info:
            await rt.get_handle("p").result()
        kids = await children_of(rt, "p")
        for kid in kids:
            if kid.workflow == "parent/Fan":
                with pytest.raises(RunCancelled):
                    await rt.get_handle(kid.run_id).result()
        statuses = sorted([(k.workflow, (await rt.describe(k.run_id)).status.value) for k in kids])
    assert info.value.reason == "gone"
    assert statuses == [("child", "SUCCEEDED"), ("parent/Fan", "CANCELLED"), ("parent/Fan", "CANCELLED")]


# ----------------------------------------------------------------------------- kill -9

WORKER = Path(__file__).with_name("child_worker.py")


def side_lines(side: Path) -> list[int]:
    return [int(x) for x in side.read_text(encoding="utf-8").split()] if side.exists() else []


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_kill_9_during_a_distributed_map_then_resume_in_a_new_process(tmp_path: Path, loop: str) -> None:
    db, side = tmp_path / "k.db", tmp_path / "side.txt"
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), str(db), str(side), "start", loop],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    kill_9_when(proc, lambda: len(side_lines(side)) >= 6)
    before = Counter(side_lines(side))
    assert 6 <= sum(before.values()) < 20, "the kill must land mid-map"

    async def finished_children() -> set[int]:
        store = SQLiteStore(db)
        await store.start()
        try:
            runs = await store.list_runs(statuses=[RunStatus.SUCCEEDED], workflow="fan/Fan")
        finally:
            await store.close()
        return {int(r.input) for r in runs}

    finished = anyio.run(finished_children)
    assert finished, "some children had finished before the kill"

    done = subprocess.run(
        [sys.executable, str(WORKER), str(db), str(side), "resume", loop],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"squares": [i * i for i in range(20)], "n": 20}
    after = Counter(side_lines(side))
    assert sorted(after) == list(range(20))  # every item ran
    # A child that had finished is not run again; the two running at the kill (MaxConcurrency)
    # resume and run their task again; every other item runs once.
    assert all(after[i] == before[i] == 1 for i in finished)
    again = [i for i in after if after[i] > 1]
    assert len(again) <= 2 and all(after[i] == 2 and before[i] == 1 for i in again), again


async def test_a_failed_distributed_map_stops_the_items_still_running() -> None:
    gate = asyncio.Event()

    async def hang(n: int) -> int:
        calls[f"hang:{n}"] += 1
        if n < 0:
            raise StatesError("Negative", str(n))
        await gate.wait()
        return n

    sm = distributed(concurrency=3, item="hang", resources={"hang": hang})
    async with open_runtime(":memory:", workflows=[sm], clock=VirtualClock()) as rt:
        handle = await rt.start(sm, [1, 2, -3, 4, 5], run_id="p")
        with pytest.raises(RunFailed) as info:
            await handle.result()
        kids = {k.run_id: k for k in await children_of(rt, "p")}
    assert info.value.error == "States.ExceedToleratedFailureThreshold"
    # Items 1 and 2 were running when item -3 failed: their runs are stopped, not left behind;
    # items 4 and 5 never started.
    assert {k: v.status for k, v in kids.items()} == {
        "p-M-2-0-0": RunStatus.CANCELLED,
        "p-M-2-0-1": RunStatus.CANCELLED,
        "p-M-2-0-2": RunStatus.FAILED,
    }
    assert calls["hang:4"] == calls["hang:5"] == 0


async def test_a_sync_task_past_its_timeout_fails_with_states_timeout_and_stops_the_child() -> None:
    child = StateMachine(
        {"StartAt": "Slow", "States": {"Slow": {"Type": "Wait", "Seconds": 600, "End": True}}}, name="child"
    )
    parent = StateMachine(
        {"StartAt": "Call", "States": {"Call": {
            "Type": "Task", "Resource": f"{START}.sync:2", "TimeoutSeconds": 60,
            "Parameters": {"StateMachineArn": f"{ARN}child", "Input": {}}, "End": True}}},
        name="parent",
    )  # fmt: skip
    clock = VirtualClock()
    async with open_runtime(":memory:", workflows=[parent, child], clock=clock) as rt:
        t0 = clock.time()
        with pytest.raises(RunFailed) as info:
            await (await rt.start(parent, {}, run_id="p")).result()
        assert clock.time() - t0 == pytest.approx(60)
        [kid] = await children_of(rt, "p")
    assert info.value.error == "States.Timeout"
    assert kid.status is RunStatus.CANCELLED


async def test_a_sync_child_that_ends_in_time_is_not_affected_by_the_timeout() -> None:
    params = {"StateMachineArn": f"{ARN}child", "Input": {"n.$": "$.n", "fail.$": "$.fail"}}
    parent = StateMachine(
        {"StartAt": "Call", "States": {"Call": {
            "Type": "Task", "Resource": f"{START}.sync:2", "TimeoutSeconds": 60, "Parameters": params, "End": True}}},
        name="parent",
    )  # fmt: skip
    async with open_runtime(":memory:", workflows=[parent, child_machine()], clock=VirtualClock()) as rt:
        out = await (await rt.start(parent, {"n": 4, "fail": False}, run_id="p")).result()
    assert out["Output"] == {"d": 8}


def test_a_sync_child_past_the_deadline_times_out_on_the_local_host_too() -> None:
    child = StateMachine(
        {"StartAt": "Slow", "States": {"Slow": {"Type": "Wait", "Seconds": 600, "End": True}}}, name="child"
    )
    parent = StateMachine(
        {"StartAt": "Call", "States": {"Call": {
            "Type": "Task", "Resource": f"{START}.sync:2", "TimeoutSeconds": 60,
            "Parameters": {"StateMachineArn": f"{ARN}child", "Input": {}}, "End": True}}},
        name="parent",
    )  # fmt: skip
    from wayline.runtime.asl import execute

    host = LocalHost(parent, machines={"child": child}, start_time=0.0)
    with pytest.raises(StatesError) as info:
        anyio.run(execute, parent, {}, host)
    assert info.value.error == "States.Timeout"


async def test_a_failed_parallel_branch_stops_the_sync_children_of_its_siblings() -> None:
    gate = asyncio.Event()

    async def hang(p: Any) -> Any:
        await gate.wait()
        return p

    async def boom(p: Any) -> Any:
        raise StatesError("Boom", "the other branch failed")

    child = StateMachine(
        {"StartAt": "H", "States": {"H": {"Type": "Task", "Resource": "hang", "End": True}}},
        name="child",
        resources={"hang": hang},
    )
    parent = StateMachine(
        {"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": True, "Branches": [
            {"StartAt": "Call", "States": {"Call": {
                "Type": "Task", "Resource": f"{START}.sync:2",
                "Parameters": {"StateMachineArn": f"{ARN}child", "Input": {}}, "End": True}}},
            {"StartAt": "Wait", "States": {
                "Wait": {"Type": "Wait", "Seconds": 5, "Next": "Fail"},
                "Fail": {"Type": "Task", "Resource": "boom", "End": True}}},
        ]}}},
        name="parent",
        resources={"boom": boom},
    )  # fmt: skip
    async with open_runtime(":memory:", workflows=[parent, child], clock=VirtualClock()) as rt:
        with pytest.raises(RunFailed) as info:
            await (await rt.start(parent, {}, run_id="p")).result()
        [kid] = await children_of(rt, "p")
    assert info.value.error == "Boom"
    assert kid.status is RunStatus.CANCELLED  # not left running with no one to read its result
