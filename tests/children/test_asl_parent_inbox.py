"""A state machine that waits for a child run (``startExecution.sync``) gets the child's end
through its own durable inbox, as a code workflow parent does: the child's end is committed
to the parent's inbox, and a parent restarted after a crash at any store write takes it from
there (or has it sent again), starts no second child and ends with the clean result."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from _support import crashed_at_every_write
from wayline import RunContext, StateMachine, activity, open_runtime, workflow
from wayline.persistence import ChildDone, InboxMessage, SQLiteStore
from wayline.testing import FaultInjectingStore, VirtualClock

pytestmark = pytest.mark.anyio

executions: Counter[str] = Counter()


@activity(name="bump")
async def bump(what: str, n: int) -> int:
    executions[what] += 1
    return n + 1


@workflow(name="code-kid")
async def code_kid(ctx: RunContext, p: dict[str, Any]) -> dict[str, Any]:
    n = await ctx.run(bump, "kid-a", p["n"])
    await ctx.sleep(30)  # the parent is waiting when the child ends
    return {"n": await ctx.run(bump, "kid-b", n)}


async def before(p: dict[str, Any]) -> dict[str, Any]:
    executions["parent-before"] += 1
    return {"n": p["n"] * 10}


async def after(p: dict[str, Any]) -> dict[str, Any]:
    executions["parent-after"] += 1
    return {"n": p["n"] + 1000}


PARENT = StateMachine(
    {
        "StartAt": "Before",
        "States": {
            "Before": {"Type": "Task", "Resource": "before", "Next": "Call"},
            "Call": {
                "Type": "Task",
                "Resource": "arn:aws:states:::states:startExecution.sync:2",
                "Parameters": {
                    "StateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:code-kid",
                    "Name": "the-kid",
                    "Input": {"n.$": "$.n"},
                },
                "OutputPath": "$.Output",
                "Next": "After",
            },
            "After": {"Type": "Task", "Resource": "after", "End": True},
        },
    },
    name="asl-mom",
    resources={"before": before, "after": after},
)


class InboxSpy(FaultInjectingStore):
    """The real store, with the inbox messages sent to each run noted."""

    def __init__(self, inner: Any, **kw: Any) -> None:
        super().__init__(inner, **kw)
        self.sent: list[tuple[str, InboxMessage]] = []

    async def append_inbox(self, run_id: str, message: InboxMessage) -> int | None:
        self.sent.append((run_id, message))
        return await super().append_inbox(run_id, message)


async def run_once(store: Any) -> Any:
    async with open_runtime(store, workflows=[PARENT, code_kid], clock=VirtualClock()) as rt:
        return await (await rt.start(PARENT, {"n": 2}, run_id="mom")).result()


async def family_in(path: Path) -> tuple[list[str], list[Any]]:
    store = SQLiteStore(path)
    await store.start()
    try:
        return sorted(r.run_id for r in await store.list_runs()), await store.get_inbox("mom")
    finally:
        await store.close()


async def test_the_child_s_end_comes_through_the_parent_s_inbox(tmp_path: Path) -> None:
    executions.clear()
    spy = InboxSpy(SQLiteStore(tmp_path / "w.db"))
    assert await run_once(spy) == {"n": 1022}
    ends = [(to, m) for to, m in spy.sent if isinstance(m, ChildDone)]
    assert [(to, m.run_id, m.status, m.output) for to, m in ends] == [("mom", "the-kid", "SUCCEEDED", {"n": 22})]
    assert await family_in(tmp_path / "w.db") == (["mom", "the-kid"], [])  # taken, and deleted


async def test_an_asl_parent_and_its_code_child_through_a_crash_at_every_write(tmp_path: Path) -> None:
    executions.clear()
    counter = FaultInjectingStore(SQLiteStore(tmp_path / "clean.db"), crash_at=None)
    clean = await run_once(counter)
    assert clean == {"n": 1022}
    clean_counts = Counter(executions)
    assert counter.writes >= 8
    async for path, where in crashed_at_every_write(tmp_path, counter.writes, run_once, reset=executions.clear):
        assert await run_once(SQLiteStore(path)) == clean, where
        assert await family_in(path) == (["mom", "the-kid"], []), where  # one child; its end taken
        assert not clean_counts - executions, f"{where}: steps never ran"
        extra = executions - clean_counts
        assert max(extra.values(), default=0) <= 1, f"{where}: re-executed {extra}"
