"""Task states on LocalHost: resources, Retry/Catch with backoff, callbacks, child runs."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import pytest

from wayline.runtime.asl import LocalHost, StateMachine, StatesError

T0 = 1_000_000.0


def run(machine: StateMachine, data: Any, host: LocalHost | None = None) -> Any:
    host = host or LocalHost(machine, start_time=T0)
    return anyio.run(host.execute, machine, data)


def test_task_calls_python_resource_with_parameters_and_result_path() -> None:
    async def add(payload: dict[str, int]) -> dict[str, int]:
        return {"sum": payload["a"] + payload["b"]}

    sm = StateMachine(
        {
            "StartAt": "Add",
            "States": {
                "Add": {
                    "Type": "Task",
                    "Resource": "arn:aws:lambda:local:0:function:add",
                    "Parameters": {"a.$": "$.x", "b": 2},
                    "ResultSelector": {"total.$": "$.sum"},
                    "ResultPath": "$.out",
                    "End": True,
                }
            },
        },
        resources={"arn:aws:lambda:local:0:function:add": add},
    )
    host = LocalHost(sm, start_time=T0)
    assert run(sm, {"x": 40}, host) == {"x": 40, "out": {"total": 42}}
    assert host.calls == [("arn:aws:lambda:local:0:function:add", {"a": 40, "b": 2})]
    types = [e["type"] for e in host.history]
    assert types == ["ExecutionStarted", "TaskStateEntered", "TaskScheduled", "TaskStarted",
                     "TaskSucceeded", "TaskStateExited", "ExecutionSucceeded"]


def test_jsonata_task_arguments_output_and_assign() -> None:
    async def double(payload: int) -> int:
        return payload * 2

    sm = StateMachine(
        {
            "QueryLanguage": "JSONata",
            "StartAt": "Double",
            "States": {
                "Double": {
                    "Type": "Task",
                    "Resource": "double",
                    "Arguments": "{% $states.input.n %}",
                    "Assign": {"seen": "{% $states.result %}"},
                    "Output": {"r": "{% $states.result + 1 %}"},
                    "Next": "Show",
                },
                "Show": {"Type": "Pass", "Output": {"r": "{% $states.input.r %}",
                                                   "seen": "{% $seen %}"}, "End": True},
            },
        },
        resources={"double": double},
    )
    assert run(sm, {"n": 5}) == {"r": 11, "seen": 10}


class Flaky:
    def __init__(self, failures: int, error: str = "Boom") -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    async def __call__(self, payload: Any) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            raise StatesError(self.error, f"failure {self.calls}")
        return {"ok": self.calls}


def retry_machine(fn: Flaky, retry: list[dict[str, Any]], catch: list[dict[str, Any]] | None
                  = None) -> StateMachine:
    task: dict[str, Any] = {"Type": "Task", "Resource": "flaky", "Retry": retry, "End": True}
    states: dict[str, Any] = {"Work": task}
    if catch is not None:
        task["Catch"] = catch
        states["Recover"] = {"Type": "Pass", "End": True}
    return StateMachine({"StartAt": "Work", "States": states}, resources={"flaky": fn})


def test_retry_backoff_runs_on_the_virtual_clock() -> None:
    fn = Flaky(3)
    sm = retry_machine(fn, [{"ErrorEquals": ["Boom"], "IntervalSeconds": 2, "MaxAttempts": 3,
                             "BackoffRate": 3.0}])
    host = LocalHost(sm, start_time=T0)
    assert run(sm, {}, host) == {"ok": 4}
    assert fn.calls == 4
    # 2 + 6 + 18 seconds of backoff, taken instantly on the virtual clock.
    assert host.now() == T0 + 26


def test_retry_max_delay_caps_backoff_and_jitter_full_stays_below() -> None:
    fn = Flaky(3)
    sm = retry_machine(fn, [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 10,
                             "MaxAttempts": 5, "BackoffRate": 10, "MaxDelaySeconds": 15}])
    host = LocalHost(sm, start_time=T0)
    run(sm, {}, host)
    assert host.now() == T0 + 10 + 15 + 15
    fn = Flaky(3)
    sm = retry_machine(fn, [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 10,
                             "MaxAttempts": 5, "JitterStrategy": "FULL"}])
    host = LocalHost(sm, start_time=T0)
    run(sm, {}, host)
    assert T0 <= host.now() <= T0 + 10 + 20 + 40


def test_retry_exhausted_then_catch_with_result_path() -> None:
    fn = Flaky(10)
    sm = retry_machine(
        fn,
        [{"ErrorEquals": ["Boom"], "IntervalSeconds": 1, "MaxAttempts": 2}],
        [{"ErrorEquals": ["States.TaskFailed"], "ResultPath": "$.error", "Next": "Recover"}],
    )
    assert run(sm, {"in": 1}) == {"in": 1, "error": {"Error": "Boom", "Cause": "failure 3"}}
    assert fn.calls == 3


def test_uncaught_task_error_fails_the_run() -> None:
    fn = Flaky(10, error="Custom.Error")
    sm = retry_machine(fn, [{"ErrorEquals": ["Other"], "MaxAttempts": 5}])
    with pytest.raises(StatesError) as info:
        run(sm, {})
    assert (info.value.error, info.value.cause) == ("Custom.Error", "failure 1")
    assert fn.calls == 1


def test_python_exception_becomes_error_named_after_its_class() -> None:
    async def broken(payload: Any) -> Any:
        raise KeyError("missing")

    sm = StateMachine(
        {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "broken", "Catch": [
            {"ErrorEquals": ["KeyError"], "Next": "P"}], "End": True},
            "P": {"Type": "Pass", "End": True}}},
        resources={"broken": broken},
    )
    assert run(sm, {}) == {"Error": "KeyError", "Cause": "'missing'"}


def test_jsonata_catch_output_and_assign() -> None:
    fn = Flaky(10)
    sm = StateMachine(
        {"QueryLanguage": "JSONata", "StartAt": "Work", "States": {
            "Work": {"Type": "Task", "Resource": "flaky", "End": True, "Catch": [{
                "ErrorEquals": ["States.ALL"], "Next": "Done",
                "Assign": {"why": "{% $states.errorOutput.Cause %}"},
                "Output": {"err": "{% $states.errorOutput.Error %}",
                           "was": "{% $states.input %}"}}]},
            "Done": {"Type": "Pass", "Output": {"err": "{% $states.input.err %}",
                                                "why": "{% $why %}"}, "End": True}}},
        resources={"flaky": fn},
    )
    assert run(sm, {"a": 1}) == {"err": "Boom", "why": "failure 1"}


def callback_machine(timeout: int | None = None) -> StateMachine:
    task: dict[str, Any] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "Parameters": {"token.$": "$$.Task.Token", "order.$": "$.order"},
        "ResultPath": "$.approval",
        "End": True,
    }
    if timeout:
        task["TimeoutSeconds"] = timeout
    sent: list[Any] = []

    async def send(payload: Any) -> None:
        sent.append(payload)

    sm = StateMachine({"StartAt": "Ask", "States": {"Ask": task}},
                      resources={"arn:aws:states:::sqs:sendMessage": send})
    sm.sent = sent  # type: ignore[attr-defined]
    return sm


def test_wait_for_task_token_completed_from_outside() -> None:
    sm = callback_machine()
    host = LocalHost(sm, start_time=T0)

    async def main() -> Any:
        result: list[Any] = []
        async with anyio.create_task_group() as tg:
            async def go() -> None:
                result.append(await host.execute(sm, {"order": 7}))

            tg.start_soon(go)
            token = await host.wait_for_token()
            assert sm.sent == [{"token": token, "order": 7}]  # type: ignore[attr-defined]
            host.complete_task(token, {"approved": True})
        return result[0]

    assert anyio.run(main) == {"order": 7, "approval": {"approved": True}}


async def _capture(host: LocalHost, sm: StateMachine, out: list[Any]) -> None:
    try:
        out.append(await host.execute(sm, {"order": 1}))
    except StatesError as err:
        out.append(err)


def test_wait_for_task_token_failure() -> None:
    sm = callback_machine(timeout=60)
    host = LocalHost(sm, start_time=T0)
    out: list[Any] = []

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_capture, host, sm, out)
            host.fail_task(await host.wait_for_token(), "Rejected", "no budget")

    anyio.run(main)
    assert isinstance(out[0], StatesError)
    assert (out[0].error, out[0].cause) == ("Rejected", "no budget")


def test_wait_for_task_token_timeout() -> None:
    sm = callback_machine(timeout=60)
    host = LocalHost(sm, start_time=T0)
    out: list[Any] = []

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_capture, host, sm, out)
            await host.wait_for_token()
            host.advance(59)
            await anyio.lowlevel.checkpoint()
            assert host.pending_tokens()
            host.advance(1)

    anyio.run(main)
    assert isinstance(out[0], StatesError)
    assert out[0].error == "States.Timeout"


def test_start_execution_sync_runs_a_registered_child() -> None:
    child = StateMachine({"StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": {
        "doubled.$": "States.MathAdd($.n, $.n)"}, "End": True}}}, name="child")
    for resource, expected in (
        ("arn:aws:states:::states:startExecution.sync:2", {"doubled": 8}),
        ("arn:aws:states:::states:startExecution.sync", '{"doubled":8}'),
    ):
        parent = StateMachine({"StartAt": "Call", "States": {"Call": {
            "Type": "Task", "Resource": resource,
            "Parameters": {"StateMachineArn": "arn:aws:states:local:0:stateMachine:child",
                           "Input": {"n.$": "$.n"}},
            "OutputPath": "$.Output", "End": True}}})
        host = LocalHost(parent, machines={"child": child}, start_time=T0)
        assert run(parent, {"n": 4}, host) == expected


def test_start_execution_sync_child_failure_is_task_failed() -> None:
    child = StateMachine({"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Bad",
                                                           "Cause": "child broke"}}})
    parent = StateMachine({"StartAt": "Call", "States": {"Call": {
        "Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync:2",
        "Parameters": {"StateMachineArn": "child"}, "End": True}}})
    host = LocalHost(parent, machines={"child": child}, start_time=T0)
    with pytest.raises(StatesError) as info:
        run(parent, {}, host)
    assert info.value.error == "States.TaskFailed"
    assert '"Error":"Bad"' in (info.value.cause or "")


def test_payload_limit_fails_with_data_limit_exceeded() -> None:
    async def big(payload: Any) -> str:
        return "x" * 2000

    sm = StateMachine({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "big",
                                                        "End": True}}},
                      resources={"big": big}, max_payload_bytes=1000)
    with pytest.raises(StatesError) as info:
        run(sm, {})
    assert info.value.error == "States.DataLimitExceeded"
    assert "'big'" in (info.value.cause or "")
    with pytest.raises(StatesError) as info:
        run(sm, {"x": "y" * 5000})
    assert info.value.error == "States.DataLimitExceeded"


def test_oversized_task_result_names_the_resource_and_is_catchable() -> None:
    async def big(payload: Any) -> str:
        return "x" * 2000

    sm = StateMachine({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": True,
              "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "P"}]},
        "P": {"Type": "Pass", "End": True}}},
        resources={"arn:aws:states:::lambda:invoke": big}, max_payload_bytes=1000)
    assert run(sm, {}) == {
        "Error": "States.DataLimitExceeded",
        "Cause": "The state/task 'lambda' returned a result with a size exceeding the maximum "
                 "number of bytes service limit.",
    }


def test_wait_state_on_virtual_clock() -> None:
    sm = StateMachine({"StartAt": "W", "States": {
        "W": {"Type": "Wait", "SecondsPath": "$.s", "Next": "U"},
        "U": {"Type": "Wait", "Timestamp": "2030-01-01T00:00:00Z", "End": True}}})
    host = LocalHost(sm, start_time=T0)
    assert run(sm, {"s": 30}, host) == {"s": 30}
    assert host.now() == 1893456000.0


def test_task_timeout_and_heartbeat_timeout() -> None:
    async def slow(payload: Any) -> Any:
        await anyio.sleep(5)

    sm = StateMachine({"StartAt": "T", "States": {"T": {
        "Type": "Task", "Resource": "slow", "TimeoutSeconds": 1, "End": True,
        "Catch": [{"ErrorEquals": ["States.Timeout"], "Next": "P"}]},
        "P": {"Type": "Pass", "End": True}}}, resources={"slow": slow})
    started = anyio.run(lambda: _timed(sm))
    assert started["Error"] == "States.Timeout"

    sm = StateMachine({"StartAt": "Ask", "States": {"Ask": {
        "Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "HeartbeatSeconds": 10, "End": True}}},
        resources={"arn:aws:states:::sqs:sendMessage": _noop})
    host = LocalHost(sm, start_time=T0)
    out: list[Any] = []

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_capture, host, sm, out)
            token = await host.wait_for_token()
            host.advance(8)
            host.heartbeat(token)
            host.advance(8)
            await anyio.lowlevel.checkpoint()
            assert host.pending_tokens() == [token]
            host.advance(3)

    anyio.run(main)
    assert isinstance(out[0], StatesError) and out[0].error == "States.HeartbeatTimeout"


async def _noop(payload: Any) -> None:
    return None


async def _timed(sm: StateMachine) -> Any:
    with anyio.fail_after(3):
        return await LocalHost(sm, start_time=T0).execute(sm, {})


def test_machine_timeout_seconds_fails_the_run_uncatchably() -> None:
    sm = StateMachine({"TimeoutSeconds": 100, "StartAt": "W", "States": {
        "W": {"Type": "Wait", "Seconds": 500, "Next": "P"},
        "P": {"Type": "Pass", "End": True}}})
    host = LocalHost(sm, start_time=T0)
    with pytest.raises(StatesError) as info:
        run(sm, {}, host)
    assert info.value.error == "States.Timeout"
    assert host.now() == T0 + 100


def test_step_ids_are_unique_per_item_visit_and_stable_per_attempt() -> None:
    fn = Flaky(1)
    sm = StateMachine({"StartAt": "M", "States": {"M": {
        "Type": "Map", "MaxConcurrency": 1, "ItemProcessor": {"StartAt": "W", "States": {
            "W": {"Type": "Task", "Resource": "flaky", "End": True,
                  "Retry": [{"ErrorEquals": ["Boom"]}]}}},
        "End": True}}}, resources={"flaky": fn})
    host = LocalHost(sm, start_time=T0)
    run(sm, [1, 2], host)
    (s0, a0), (s1, a1), (s2, a2) = host.steps
    assert s0 == s1 and (a0, a1) == (0, 1)  # the retry of item 0: same step, next attempt
    assert s0.startswith("M/0/W#") and s2.startswith("M/1/W#") and a2 == 0
