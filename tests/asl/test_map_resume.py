"""Map and Parallel at scale, and resuming a run from a snapshot without re-running work."""

from __future__ import annotations

import functools
import time
from typing import Any

import anyio
import msgspec
import pytest

from wayline.runtime.asl import LocalHost, StateMachine, StatesError, execute, prepare_redrive

T0 = 1_000_000.0


class Crash(BaseException):
    """Stands for the process dying: not an ASL error, so nothing catches it."""


def test_map_of_10000_items_is_fast() -> None:
    async def square(n: int) -> int:
        return n * n

    sm = StateMachine(
        {"StartAt": "M", "States": {"M": {
            "Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 0,
            "ItemProcessor": {"StartAt": "Sq", "States": {
                "Sq": {"Type": "Task", "Resource": "square", "Next": "Done"},
                "Done": {"Type": "Pass", "End": True}}},
            "End": True}}},
        resources={"square": square}, mode="express",
    )
    started = time.perf_counter()
    out = anyio.run(LocalHost(sm, start_time=T0).execute, sm, {"items": list(range(10_000))})
    elapsed = time.perf_counter() - started
    assert out == [n * n for n in range(10_000)]
    assert elapsed < 5.0, f"10,000 items took {elapsed:.2f}s"


def test_map_standard_mode_pass_only_10000_items() -> None:
    sm = StateMachine({"StartAt": "M", "States": {"M": {
        "Type": "Map", "ItemSelector": {"i.$": "$$.Map.Item.Index", "v.$": "$$.Map.Item.Value"},
        "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}},
        "End": True}}})
    started = time.perf_counter()
    out = anyio.run(LocalHost(sm, start_time=T0).execute, sm, list(range(10_000)))
    assert time.perf_counter() - started < 5.0
    assert out[9999] == {"i": 9999, "v": 9999}


def _map_machine(calls: list[int], crash_on: int | None) -> StateMachine:
    async def work(n: int) -> int:
        calls.append(n)
        if crash_on is not None and n == crash_on:
            raise Crash
        return n * 10

    return StateMachine(
        {"StartAt": "Prepare", "States": {
            "Prepare": {"Type": "Pass", "Assign": {"factor": 2}, "Next": "M"},
            "M": {"Type": "Map", "MaxConcurrency": 1,
                  "ItemProcessor": {"StartAt": "Work", "States": {
                      "Work": {"Type": "Task", "Resource": "work", "Next": "Scale"},
                      "Scale": {"Type": "Pass", "Parameters": {
                          "v.$": "$", "f.$": "$factor"}, "End": True}}},
                  "Next": "Sum"},
            "Sum": {"Type": "Pass", "Parameters": {"n.$": "States.ArrayLength($)"},
                    "End": True}}},
        resources={"work": work},
    )


@pytest.mark.parametrize("concurrency", [1, 3])
def test_resume_in_the_middle_of_a_map_does_not_rerun_completed_items(concurrency: int) -> None:
    calls: list[int] = []
    sm = _map_machine(calls, crash_on=5)
    sm.program.states["M"].max_concurrency = ("lit", concurrency)
    host = LocalHost(sm, start_time=T0)
    with pytest.raises((Crash, BaseExceptionGroup)):
        anyio.run(host.execute, sm, list(range(10)))
    snapshot = host.snapshot
    assert snapshot is not None and snapshot["status"] == "RUNNING"
    # Survive an encode/decode round trip, as a store would do.
    snapshot = msgspec.json.decode(msgspec.json.encode(snapshot))
    done_before = {int(k) for k in snapshot["frame"]["sub"]["done"]}
    assert done_before >= {0, 1, 2, 3, 4} - {5}

    resumed_calls: list[int] = []
    sm2 = _map_machine(resumed_calls, crash_on=None)
    sm2.program.states["M"].max_concurrency = ("lit", concurrency)
    host2 = LocalHost(sm2, start_time=T0)
    out = anyio.run(lambda: execute(sm2, list(range(10)), host2, resume=snapshot))
    assert out == {"n": 10}
    assert not set(resumed_calls) & done_before
    assert sorted(resumed_calls) == sorted(set(range(10)) - done_before)


def test_resume_keeps_variables_and_the_wait_deadline() -> None:
    sm = StateMachine({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Assign": {"x": 41}, "Next": "W"},
        "W": {"Type": "Wait", "Seconds": 100, "Next": "B"},
        "B": {"Type": "Pass", "Parameters": {"x.$": "States.MathAdd($x, 1)"}, "End": True}}})

    class StopAtSleep(LocalHost):
        async def sleep_until(self, when: float) -> None:
            raise Crash

    host = StopAtSleep(sm, start_time=T0)
    with pytest.raises(Crash):
        anyio.run(host.execute, sm, {})
    snapshot = host.snapshot
    assert snapshot is not None
    assert snapshot["frame"]["state"] == "W" and snapshot["frame"]["wake"] == T0 + 100
    host2 = LocalHost(sm, start_time=T0 + 30)
    assert anyio.run(lambda: execute(sm, {}, host2, resume=snapshot)) == {"x": 42}
    assert host2.now() == T0 + 100


def test_resume_a_finished_snapshot_returns_the_output() -> None:
    sm = StateMachine({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}})
    host = LocalHost(sm, start_time=T0)
    anyio.run(host.execute, sm, {"k": 1})
    assert host.snapshot is not None and host.snapshot["status"] == "SUCCEEDED"
    assert anyio.run(lambda: execute(sm, None, host, resume=host.snapshot)) == {"k": 1}


def test_parallel_branches_and_branch_failure_is_catchable() -> None:
    sm = StateMachine({"StartAt": "P", "States": {
        "P": {"Type": "Parallel", "Branches": [
            {"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": 1, "End": True}}},
            {"StartAt": "B", "States": {"B": {"Type": "Fail", "Error": "BranchBad",
                                              "Cause": "b"}}}],
            "Catch": [{"ErrorEquals": ["BranchBad"], "ResultPath": "$.err", "Next": "Done"}],
            "End": True},
        "Done": {"Type": "Pass", "End": True}}})
    out = anyio.run(LocalHost(sm, start_time=T0).execute, sm, {"in": True})
    assert out == {"in": True, "err": {"Error": "BranchBad", "Cause": "b"}}


def test_map_iteration_variables_are_scoped() -> None:
    sm = StateMachine({"StartAt": "Init", "States": {
        "Init": {"Type": "Pass", "Assign": {"outer": "o"}, "Next": "M"},
        "M": {"Type": "Map", "ItemProcessor": {"StartAt": "In", "States": {
            "In": {"Type": "Pass", "Assign": {"inner.$": "$"}, "Next": "Read"},
            "Read": {"Type": "Pass", "Parameters": {"o.$": "$outer", "i.$": "$inner"},
                     "End": True}}}, "Next": "After"},
        "After": {"Type": "Pass", "Parameters": {"outer.$": "$outer", "n.$": "$"}, "End": True}}})
    out = anyio.run(LocalHost(sm, start_time=T0).execute, sm, [1, 2])
    assert out == {"outer": "o", "n": [{"o": "o", "i": 1}, {"o": "o", "i": 2}]}
    bad = StateMachine({"StartAt": "Init", "States": {
        "Init": {"Type": "Pass", "Assign": {"outer": "o"}, "Next": "M"},
        "M": {"Type": "Map", "ItemProcessor": {"StartAt": "In", "States": {
            "In": {"Type": "Pass", "Assign": {"inner.$": "$"}, "End": True}}}, "Next": "After"},
        "After": {"Type": "Pass", "Parameters": {"inner.$": "$inner"}, "End": True}}})
    with pytest.raises(StatesError) as info:
        anyio.run(LocalHost(bad, start_time=T0).execute, bad, [1])
    assert info.value.error == "States.Runtime"


def test_distributed_map_runs_items_as_child_runs_with_tolerance() -> None:
    async def check(n: int) -> int:
        if n % 4 == 0:
            raise StatesError("Bad", str(n))
        return n

    definition: dict[str, Any] = {"StartAt": "M", "States": {"M": {
        "Type": "Map", "ToleratedFailurePercentage": 30,
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED"}, "StartAt": "C",
                          "States": {"C": {"Type": "Task", "Resource": "check", "End": True}}},
        "End": True}}}
    sm = StateMachine(definition, resources={"check": check})
    host = LocalHost(sm, start_time=T0)
    out = anyio.run(host.execute, sm, list(range(1, 9)))
    assert out[:3] == [1, 2, 3] and out[3] == {"Error": "Bad", "Cause": "4"}
    assert len(host.children) == 8
    definition["States"]["M"]["ToleratedFailurePercentage"] = 10
    sm = StateMachine(definition, resources={"check": check})
    with pytest.raises(StatesError) as info:
        anyio.run(LocalHost(sm, start_time=T0).execute, sm, list(range(1, 9)))
    assert info.value.error == "States.ExceedToleratedFailureThreshold"


def test_item_batcher_groups_items() -> None:
    sm = StateMachine({"StartAt": "M", "States": {"M": {
        "Type": "Map", "ItemBatcher": {"MaxItemsPerBatch": 2, "BatchInput": {"tag": "t"}},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED"}, "StartAt": "P",
                          "States": {"P": {"Type": "Pass", "End": True}}},
        "End": True}}})
    out = anyio.run(LocalHost(sm, start_time=T0).execute, sm, [1, 2, 3])
    assert out == [{"BatchInput": {"tag": "t"}, "Items": [1, 2]},
                   {"BatchInput": {"tag": "t"}, "Items": [3]}]


def test_checkpoints_standard_vs_express() -> None:
    definition = {"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "Next": "C"},
        "C": {"Type": "Pass", "End": True}}}
    standard = StateMachine(definition)
    host = LocalHost(standard, start_time=T0)
    anyio.run(host.execute, standard, {})
    assert host.checkpoints == 4  # start, two transitions, finish
    express = StateMachine(definition, mode="express")
    host = LocalHost(express, start_time=T0)
    anyio.run(host.execute, express, {})
    assert host.checkpoints == 1
    assert [e["id"] for e in host.history] == list(range(1, 9))


@pytest.mark.parametrize("concurrency", [0, 1])
def test_standard_mode_map_checkpoints_stay_linear(concurrency: int) -> None:
    async def square(n: int) -> int:
        return n * n

    sm = StateMachine(
        {"StartAt": "M", "States": {"M": {
            "Type": "Map", "MaxConcurrency": concurrency,
            "ItemProcessor": {"StartAt": "Sq", "States": {
                "Sq": {"Type": "Task", "Resource": "square", "End": True}}},
            "End": True}}},
        resources={"square": square},
    )
    host = LocalHost(sm, start_time=T0)
    started = time.perf_counter()
    out = anyio.run(host.execute, sm, list(range(10_000)))
    assert out[-1] == 9999 * 9999
    assert time.perf_counter() - started < 5.0
    # Progress is persisted as results grow geometrically, not after every item.
    assert host.checkpoints < 200


def test_item_reader_fetches_items_through_a_resource() -> None:
    seen: list[Any] = []

    async def get_object(payload: Any) -> list[int]:
        seen.append(payload)
        return [1, 2, 3, 4]

    sm = StateMachine({"StartAt": "M", "States": {"M": {
        "Type": "Map",
        "ItemReader": {"Resource": "arn:aws:states:::s3:getObject",
                       "ReaderConfig": {"InputType": "JSON", "MaxItems": 3},
                       "Parameters": {"Bucket.$": "$.bucket", "Key": "items.json"}},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED"}, "StartAt": "P",
                          "States": {"P": {"Type": "Pass", "End": True}}},
        "End": True}}}, resources={"arn:aws:states:::s3:getObject": get_object})
    out = anyio.run(LocalHost(sm, start_time=T0).execute, sm, {"bucket": "b"})
    assert out == [1, 2, 3]
    assert seen == [{"Bucket": "b", "Key": "items.json"}]


class CrashAfterCheckpoint(LocalHost):
    """Stores the k-th checkpoint, then dies (as if the process were killed right after)."""

    def __init__(self, sm: StateMachine, k: int) -> None:
        super().__init__(sm, start_time=T0)
        self.k = k

    async def checkpoint(self, snapshot: dict[str, Any], events: list[dict[str, Any]]) -> None:
        await super().checkpoint(snapshot, events)
        if self.checkpoints == self.k:
            raise Crash


def _durable_machine(log: list[Any]) -> StateMachine:
    async def work(payload: Any) -> Any:
        log.append(payload)
        return {"done": payload}

    return StateMachine(
        {"StartAt": "Prep", "States": {
            "Prep": {"Type": "Pass", "Assign": {"k": 3}, "Next": "Fan"},
            "Fan": {"Type": "Parallel", "Branches": [
                {"StartAt": "M", "States": {"M": {
                    "Type": "Map", "MaxConcurrency": 2, "ItemSelector": {"v.$": "$$.Map.Item.Value"},
                    "ItemProcessor": {"StartAt": "W", "States": {
                        "W": {"Type": "Task", "Resource": "work", "Next": "Nap"},
                        "Nap": {"Type": "Wait", "Seconds": 5, "End": True}}},
                    "End": True}}},
                {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "work",
                                                  "Parameters": {"k.$": "$k"}, "End": True}}}],
                "Next": "Last"},
            "Last": {"Type": "Pass", "Parameters": {"n.$": "States.ArrayLength($[0])"},
                     "End": True}}},
        resources={"work": work},
    )


def test_crash_after_every_checkpoint_then_resume_gives_the_same_result() -> None:
    log: list[Any] = []
    sm = _durable_machine(log)
    reference_host = LocalHost(sm, start_time=T0)
    reference = anyio.run(reference_host.execute, sm, [1, 2, 3, 4])
    total = reference_host.checkpoints
    assert reference == {"n": 4} and total > 5
    for k in range(1, total):
        log = []
        sm = _durable_machine(log)
        host = CrashAfterCheckpoint(sm, k)
        with pytest.raises(Crash):
            anyio.run(host.execute, sm, [1, 2, 3, 4])
        snapshot = msgspec.json.decode(msgspec.json.encode(host.snapshot))
        before = len(log)
        resumed = LocalHost(sm, start_time=T0)
        go = functools.partial(resumed.execute, sm, [1, 2, 3, 4], resume=snapshot)
        assert anyio.run(go) == reference
        # At-least-once: every task ran, and work finished before the checkpoint is not redone
        # beyond the 5 task calls of one clean run.
        assert len(log) >= 5 and len(log) - before <= 5


def test_redrive_reruns_only_the_failed_map_items() -> None:
    calls: list[int] = []
    broken = {3}

    async def work(n: int) -> int:
        calls.append(n)
        if n in broken:
            raise StatesError("Flaky", f"item {n}")
        return n

    sm = StateMachine({"StartAt": "Init", "States": {
        "Init": {"Type": "Pass", "Assign": {"tag": "t"}, "Next": "M"},
        "M": {"Type": "Map", "MaxConcurrency": 1, "ItemProcessor": {"StartAt": "W", "States": {
            "W": {"Type": "Task", "Resource": "work", "End": True}}}, "Next": "Out"},
        "Out": {"Type": "Pass", "Parameters": {"r.$": "$", "tag.$": "$tag",
                                               "n.$": "$$.Execution.RedriveCount"},
                "End": True}}}, resources={"work": work})
    host = LocalHost(sm, start_time=T0)
    with pytest.raises(StatesError) as info:
        anyio.run(host.execute, sm, [1, 2, 3, 4])
    assert info.value.error == "Flaky" and calls == [1, 2, 3]
    failed = host.snapshot
    assert failed is not None and failed["status"] == "FAILED"
    broken.clear()
    calls.clear()
    go = functools.partial(LocalHost(sm, start_time=T0).execute, sm, None,
                           resume=prepare_redrive(failed))
    assert anyio.run(go) == {"r": [1, 2, 3, 4], "tag": "t", "n": 1}
    assert calls == [3, 4]
    with pytest.raises(ValueError):
        prepare_redrive({"status": "SUCCEEDED"})


def test_history_reads_like_aws_execution_history() -> None:
    sm = StateMachine({"StartAt": "StartState", "States": {
        "StartState": {"Type": "Pass", "Result": [1, "Hello"], "ResultPath": "$.arr",
                       "Next": "MapState"},
        "MapState": {"Type": "Map", "InputPath": "$.arr", "MaxConcurrency": 1,
                     "ItemProcessor": {"StartAt": "Equals3", "States": {
                         "Equals3": {"Type": "Choice", "Choices": [
                             {"Variable": "$", "NumericEquals": 3, "Next": "Pass"}],
                             "Default": "Pass"},
                         "Pass": {"Type": "Pass", "End": True}}},
                     "End": True}}})
    host = LocalHost(sm, start_time=T0)
    anyio.run(host.execute, sm, {})
    types = [(e["id"], e["type"]) for e in host.history]
    # The same sequence and ids as the recorded AWS history of this machine.
    assert types[:11] == [
        (1, "ExecutionStarted"), (2, "PassStateEntered"), (3, "PassStateExited"),
        (4, "MapStateEntered"), (5, "MapStateStarted"), (6, "MapIterationStarted"),
        (7, "ChoiceStateEntered"), (8, "ChoiceStateExited"), (9, "PassStateEntered"),
        (10, "PassStateExited"), (11, "MapIterationSucceeded"),
    ]
    assert host.history[4]["mapStateStartedEventDetails"] == {"length": 2}
    assert host.history[5]["mapIterationStartedEventDetails"] == {"index": 0, "name": "MapState"}
    assert types[-3:] == [(18, "MapStateSucceeded"), (19, "MapStateExited"),
                          (20, "ExecutionSucceeded")]
