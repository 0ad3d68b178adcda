"""Several versions of one workflow side by side: new runs take the newest, a run keeps its own,
a start can pin one, and state machine aliases route starts by weight."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from wayline import RunContext, StateMachine, open_runtime, workflow
from wayline.errors import AliasError, DuplicateWorkflowError, VersionNotFoundError
from wayline.runtime import StateMachineAlias, version_key
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio


def test_newest_compares_labels_as_version_numbers() -> None:
    labels = ["1", "10", "9", "1.10", "1.9", "2026-03-01", "2026-02-28", "v2", "v10", "1.1", "2"]
    assert sorted(labels, key=version_key) == [
        "1",
        "1.1",
        "1.9",
        "1.10",
        "2",
        "9",
        "10",
        "2026-02-28",
        "2026-03-01",
        "v2",
        "v10",
    ]


@workflow(name="invoice", version="1")
async def invoice_v1(ctx: RunContext, amount: float) -> str:
    await ctx.wait_signal("go")
    return f"v1:{amount}"


@workflow(name="invoice", version="10")
async def invoice_v10(ctx: RunContext, amount: float) -> str:
    await ctx.wait_signal("go")
    return f"v10:{amount * 1.2:.2f}"


@workflow(name="invoice", version="9")
async def invoice_v9(ctx: RunContext, amount: float) -> str:
    await ctx.wait_signal("go")
    return f"v9:{amount}"


async def test_new_runs_take_the_newest_and_each_run_keeps_its_version(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    # Before the deploy: only version 1 exists; a run starts on it and waits.
    async with open_runtime(db, workflows=[invoice_v1], clock=VirtualClock()) as rt:
        await rt.start(invoice_v1, 10.0, run_id="old")
        await rt.clock.sleep(1)
    # After: 1, 9 and 10 side by side. "old" resumes on version 1; new runs take 10, whichever
    # object or name they are started with, unless they pin one.
    async with open_runtime(db, workflows=[invoice_v1, invoice_v10, invoice_v9], clock=VirtualClock()) as rt:
        await rt.start(invoice_v1, 10.0, run_id="by-object")
        await rt.start("invoice", 10.0, run_id="by-name")
        await rt.start(invoice_v10, 10.0, run_id="pinned", version="9")
        await rt.start("invoice:1", 10.0, run_id="qualified")
        for run_id in ("old", "by-object", "by-name", "pinned", "qualified"):
            await rt.signal(run_id, "go")
        results = {r: await rt.get_handle(r).result() for r in ("old", "by-object", "by-name", "pinned", "qualified")}
        versions = {r: (await rt.describe(r)).version for r in results}
        with pytest.raises(VersionNotFoundError, match=r"no version '3'.*'1', '9', '10'"):
            await rt.start("invoice", 1.0, version="3")
    assert results == {
        "old": "v1:10.0",
        "by-object": "v10:12.00",
        "by-name": "v10:12.00",
        "pinned": "v9:10.0",
        "qualified": "v1:10.0",
    }
    assert versions == {"old": "1", "by-object": "10", "by-name": "10", "pinned": "9", "qualified": "1"}


async def test_a_run_whose_version_is_gone_resumes_on_the_newest(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    async with open_runtime(db, workflows=[invoice_v1], clock=VirtualClock()) as rt:
        await rt.start(invoice_v1, 10.0, run_id="old")
        await rt.clock.sleep(1)
    async with open_runtime(db, workflows=[invoice_v9], clock=VirtualClock()) as rt:
        await rt.signal("old", "go")
        assert await rt.get_handle("old").result() == "v9:10.0"  # same steps: it replays on 9
        assert (await rt.describe("old")).version == "1"  # and keeps its recorded version


async def test_two_definitions_of_one_version_are_refused() -> None:
    @workflow(name="invoice", version="1")
    async def other(ctx: RunContext, amount: float) -> str:
        return "other"

    with pytest.raises(DuplicateWorkflowError, match="'invoice' version '1'"):
        async with open_runtime(":memory:", workflows=[invoice_v1, other]):
            pass
    async with open_runtime(":memory:", workflows=[invoice_v1, invoice_v1]) as rt:  # the same one twice
        assert (await rt.start("invoice", 1.0)).run_id


ONE = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": "one", "End": True}}}
TWO = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": "two", "End": True}}}


async def test_an_alias_routes_ten_thousand_starts_within_two_percent_of_its_weights() -> None:
    v1 = StateMachine(ONE, name="orders").publish("1")
    v2 = StateMachine(TWO, name="orders").publish("2")
    assert (v1.name, v1.version, v1.definition) == ("orders", "1", ONE)
    live = StateMachineAlias("live", "orders", {"1": 90, "2": 10})
    async with open_runtime(":memory:", workflows=[v1, v2, live], clock=VirtualClock()) as rt:
        for i in range(10_000):
            await rt.start(live if i % 2 else "orders:live", {}, run_id=f"r{i}")
        runs = await rt.list_runs(workflow="orders")
        outputs = Counter([(await rt.get_handle(r.run_id).result(), r.version) for r in runs])
        again = await rt.start(live, {}, run_id="r7")  # the same run id: the same run, the same version
        assert (await again.describe()).version == runs[[r.run_id for r in runs].index("r7")].version
        assert all(r.metadata["alias"] == "live" for r in runs)
    assert set(outputs) == {("one", "1"), ("two", "2")}  # each version ran its own definition
    assert abs(outputs["two", "2"] / 10_000 - 0.10) <= 0.02
    assert abs(outputs["one", "1"] / 10_000 - 0.90) <= 0.02


def test_alias_routing_is_checked() -> None:
    with pytest.raises(AliasError, match="add up to 95, not 100"):
        StateMachineAlias("live", "orders", {"1": 90, "2": 5})
    with pytest.raises(AliasError, match="3 versions"):
        StateMachineAlias("live", "orders", {"1": 50, "2": 25, "3": 25})
    with pytest.raises(AliasError, match="whole percents"):
        StateMachineAlias("live", "orders", {"1": 90.5, "2": 9.5})  # type: ignore[dict-item]


async def test_an_alias_to_a_version_that_is_not_registered_is_refused() -> None:
    v1 = StateMachine(ONE, name="orders", version="1")
    with pytest.raises(AliasError, match="version '2' is not registered"):
        async with open_runtime(":memory:", workflows=[v1, StateMachineAlias("live", "orders", {"1": 50, "2": 50})]):
            pass


async def test_redrive_runs_the_failed_runs_own_version() -> None:
    failing = {"StartAt": "F", "States": {"F": {"Type": "Task", "Resource": "flaky", "End": True}}}
    calls: list[str] = []

    async def flaky_v1(event: dict[str, object]) -> str:
        calls.append("v1")
        if len(calls) == 1:
            raise RuntimeError("first call fails")
        return "v1 ok"

    async def flaky_v2(event: dict[str, object]) -> str:
        calls.append("v2")
        return "v2 ok"

    v1 = StateMachine(failing, name="m", version="1", resources={"flaky": flaky_v1})
    v2 = StateMachine(failing, name="m", version="2", resources={"flaky": flaky_v2})
    async with open_runtime(":memory:", workflows=[v1, v2], clock=VirtualClock()) as rt:
        handle = await rt.start("m", {}, version="1", run_id="f")
        with pytest.raises(Exception, match="first call fails"):
            await handle.result()
        assert await (await rt.redrive("f")).result() == "v1 ok"
    assert calls == ["v1", "v1"]
