"""State machines run by the durable runtime: rt.start, checkpoints, crash and resume."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from tests.asl._conformance import CASES_DIR, load_cases, same_json

from _support import until
from wayline import RunCancelled, RunFailed, RunStatus, StateMachine, WaylineError, open_runtime
from wayline.errors import AslDefinitionError, ResourceError
from wayline.persistence import Custom, SQLiteStore
from wayline.testing import FaultInjectingStore, SimulatedCrash, VirtualClock

pytestmark = pytest.mark.anyio

DAY = 86400.0
calls: Counter[str] = Counter()


async def validate(p: dict[str, Any]) -> dict[str, Any]:
    calls["validate"] += 1
    return {"ok": True}


async def charge(p: dict[str, Any]) -> dict[str, Any]:
    calls["charge"] += 1
    if p.get("fail"):
        raise ValueError("card declined")
    return {"charged": p["n"] * 2}


ORDER = {
    "StartAt": "Validate",
    "States": {
        "Validate": {"Type": "Task", "Resource": "validate", "ResultPath": "$.validation", "Next": "Pause"},
        "Pause": {"Type": "Wait", "Seconds": 86400, "Next": "Charge"},
        "Charge": {
            "Type": "Task",
            "Resource": "arn:aws:lambda:us-east-1:1:function:charge",
            "Parameters": {"n.$": "$.n", "fail.$": "$.fail"},
            "Retry": [{"ErrorEquals": ["ValueError"], "MaxAttempts": 2, "IntervalSeconds": 5}],
            "End": True,
        },
    },
}


def order_machine() -> StateMachine:
    return StateMachine(
        ORDER, name="orders", resources={"validate": validate, "arn:aws:lambda:us-east-1:1:function:charge": charge}
    )


@pytest.fixture(autouse=True)
def _reset() -> None:
    calls.clear()


async def test_a_state_machine_runs_durably_with_virtual_time(tmp_path: Path) -> None:
    sm = order_machine()
    async with open_runtime(tmp_path / "a.db", workflows=[sm], clock=VirtualClock()) as rt:
        out = await (await rt.start(sm, {"n": 21, "fail": False}, run_id="a")).result()
        info = await rt.describe("a")
        history = [e async for e in rt.history("a")]
    assert out == {"charged": 42}
    assert info.status is RunStatus.SUCCEEDED and info.workflow == "orders"
    assert info.ended_at is not None and info.ended_at - info.created_at == pytest.approx(DAY)
    names = [e.name for e in history if isinstance(e, Custom)]
    assert names[0] == "ExecutionStarted" and names[-1] == "ExecutionSucceeded"
    assert names.count("TaskSucceeded") == 2 and "WaitStateEntered" in names
    assert calls == {"validate": 1, "charge": 1}


async def test_task_errors_are_retried_then_fail_the_run_with_the_asl_error() -> None:
    sm = order_machine()
    clock = VirtualClock()
    async with open_runtime(":memory:", workflows=[sm], clock=clock) as rt:
        t0 = clock.time()
        with pytest.raises(RunFailed) as info:
            await (await rt.start(sm, {"n": 1, "fail": True}, run_id="b")).result()
    assert (info.value.error, info.value.cause) == ("ValueError", "card declined")
    assert calls["charge"] == 3  # one attempt and two retries
    assert clock.time() - t0 == pytest.approx(DAY + 5 + 10)  # the wait, then backoff 5s and 10s


async def test_an_unbound_resource_is_refused_at_open_runtime_not_by_a_failed_run(tmp_path: Path) -> None:
    sm = StateMachine({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "nowhere", "End": True}}}, name="x")
    db = tmp_path / "w.db"
    with pytest.raises(ResourceError) as info:
        async with open_runtime(db, workflows=[sm]):
            pass
    assert info.value.machine == "x"
    (problem,) = info.value.problems
    assert "Task 'T': no resource is bound to 'nowhere'" in problem
    assert "resources={'nowhere': fn}" in problem and "--resources" in problem
    async with open_runtime(db) as rt:
        assert await rt.list_runs() == []  # no FAILED run left behind


async def test_a_sync_resource_is_refused_at_state_machine_with_the_fix_named() -> None:
    def validate(payload: dict[str, Any]) -> dict[str, Any]:
        return payload

    definition = {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "validate", "End": True}}}
    with pytest.raises(ResourceError) as info:
        StateMachine(definition, name="x", resources={"validate": validate})  # type: ignore[dict-item]
    (problem,) = info.value.problems
    assert "resources['validate']" in problem and "is a plain function" in problem
    assert "async def" in problem and "asyncio.to_thread" in problem

    async def checked(payload: dict[str, Any]) -> dict[str, Any]:
        return payload

    sm = StateMachine(definition, name="x", resources={"validate": checked})
    async with open_runtime(":memory:", workflows=[sm]) as rt:
        assert await (await rt.start(sm, {"ok": 1})).result() == {"ok": 1}


def test_invalid_definitions_are_wayline_errors_naming_the_path() -> None:
    with pytest.raises(AslDefinitionError) as info:
        StateMachine({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nope"}}})
    assert isinstance(info.value, WaylineError)
    assert any(p.startswith("/States/A/Next") for p in info.value.problems)


@pytest.mark.parametrize("when", ["before", "after"])
async def test_a_run_resumes_from_its_snapshot_after_a_crash_at_any_write(tmp_path: Path, when: str) -> None:
    sm = order_machine()
    counter = FaultInjectingStore(SQLiteStore(tmp_path / "clean.db"))
    async with open_runtime(counter, workflows=[sm], clock=VirtualClock()) as rt:
        expected = await (await rt.start(sm, {"n": 5, "fail": False}, run_id="r")).result()
    writes, clean = counter.writes, dict(calls)
    assert writes >= 4
    for n in range(1, writes + 1):
        calls.clear()
        path = tmp_path / f"crash-{when}-{n}.db"
        store = FaultInjectingStore(SQLiteStore(path), crash_at=n, when=when)
        with pytest.raises((SimulatedCrash, BaseExceptionGroup)):
            async with open_runtime(store, workflows=[sm], clock=VirtualClock()) as rt:
                await (await rt.start(sm, {"n": 5, "fail": False}, run_id="r")).result()
        async with open_runtime(path, workflows=[sm], clock=VirtualClock()) as rt:
            if await rt.store.get_run("r") is None:  # crashed before the run was created
                await rt.start(sm, {"n": 5, "fail": False}, run_id="r")
            assert await rt.get_handle("r").result() == expected
        for step, count in calls.items():
            # at least once, and at most the one call in flight at the crash again
            assert clean[step] <= count <= clean[step] + 1, (n, when, dict(calls))


@pytest.mark.skipif(not CASES_DIR.is_dir(), reason="shared/conformance/asl is not beside this checkout")
async def test_conformance_cases_pass_through_the_runtime_host() -> None:
    """The recorded AWS cases, run as real runs (runtime host, checkpoints, virtual clock)."""
    cases = load_cases()
    machines: dict[str, tuple[StateMachine, dict[str, Any]]] = {}
    for i, case in enumerate(cases):
        try:
            machines[f"case-{i}"] = (StateMachine(case["definition"], name=f"case-{i}"), case)
        except AslDefinitionError:
            assert case["expected"]["status"] != "SUCCEEDED", case["name"]
    mismatches = []
    async with open_runtime(":memory:", workflows=[m for m, _ in machines.values()], clock=VirtualClock()) as rt:
        for name, (sm, case) in machines.items():
            expected = case["expected"]
            handle = await rt.start(sm, case["input"], run_id=name)
            try:
                got: tuple[Any, ...] = ("SUCCEEDED", await handle.result())
            except RunFailed as err:
                got = ("FAILED", err.error or None)
            if (
                got[0] != expected["status"]
                or (got[0] == "SUCCEEDED" and not same_json(got[1], expected.get("output")))
                or (got[0] == "FAILED" and got[1] != expected.get("error"))
            ):
                mismatches.append((case["name"], got))
    assert len(machines) > 400
    assert mismatches == []


async def test_cancelling_a_waiting_state_machine_ends_it_cancelled() -> None:
    sm = order_machine()
    clock = VirtualClock(autojump=False)
    async with open_runtime(":memory:", workflows=[sm], clock=clock) as rt:
        handle = await rt.start(sm, {"n": 1, "fail": False}, run_id="c")
        await until(lambda: calls["validate"] > 0 and clock.pending_timers > 0)  # at its Wait state
        await rt.cancel("c", "customer left")
        with pytest.raises(RunCancelled) as info:
            await handle.result()
        desc = await rt.describe("c")
    assert info.value.reason == "customer left"
    assert desc.status is RunStatus.CANCELLED
    assert calls["charge"] == 0


flaky_down = {"down": True}


async def flaky(p: dict[str, Any]) -> dict[str, Any]:
    calls["flaky"] += 1
    if flaky_down["down"]:
        raise ConnectionError("service down")
    return {"done": True}


REDRIVE = {
    "StartAt": "First",
    "States": {
        "First": {"Type": "Task", "Resource": "validate", "ResultPath": "$.first", "Next": "Second"},
        "Second": {"Type": "Task", "Resource": "flaky", "End": True},
    },
}


async def test_a_failed_state_machine_is_redriven_from_the_failed_state(tmp_path: Path) -> None:
    from wayline.errors import RedriveError

    sm = StateMachine(REDRIVE, name="redrive", resources={"validate": validate, "flaky": flaky})
    flaky_down["down"] = True
    async with open_runtime(tmp_path / "r.db", workflows=[sm], clock=VirtualClock()) as rt:
        with pytest.raises(RunFailed) as info:
            await (await rt.start(sm, {"n": 1}, run_id="r")).result()
        assert info.value.error == "ConnectionError"
    flaky_down["down"] = False
    async with open_runtime(tmp_path / "r.db", workflows=[sm], clock=VirtualClock()) as rt:
        handle = await rt.redrive("r")
        assert await handle.result() == {"done": True}
        with pytest.raises(RedriveError):
            await rt.redrive("r")  # it succeeded: nothing to redrive
        names = [e.name for e in [e async for e in rt.history("r")] if isinstance(e, Custom)]
    assert calls["validate"] == 1  # the state that had succeeded did not run again
    assert calls["flaky"] == 2
    assert "ExecutionRedriven" in names and names[-1] == "ExecutionSucceeded"


async def test_redrive_refuses_unknown_runs_and_code_workflows() -> None:
    from wayline import RunNotFoundError, workflow
    from wayline.errors import RedriveError

    @workflow(name="boom")
    async def boom(ctx: Any) -> None:
        raise ValueError("no")

    async with open_runtime(":memory:", workflows=[boom]) as rt:
        with pytest.raises(RunNotFoundError):
            await rt.redrive("missing")
        with pytest.raises(RunFailed):
            await (await rt.start(boom, run_id="b")).result()
        with pytest.raises(RedriveError, match="code workflow"):
            await rt.redrive("b")


async def test_a_task_past_its_timeout_seconds_fails_with_states_timeout() -> None:
    async def slow(p: Any) -> Any:
        await asyncio.sleep(5)
        return p

    sm = StateMachine(
        {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "slow", "TimeoutSeconds": 1, "End": True}}},
        name="slowpoke",
        resources={"slow": slow},
    )
    async with open_runtime(":memory:", workflows=[sm]) as rt:
        with pytest.raises(RunFailed) as info:
            await (await rt.start(sm, {}, run_id="t")).result()
    assert info.value.error == "States.Timeout"
