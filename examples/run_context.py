"""The run context: typed vars, and metadata and tags on runs, set at start and by the
workflow, inherited by child runs, and searched from the store's index.

Run it: ``python examples/run_context.py`` (it uses a temporary database).
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import msgspec

from wayline import RunContext, StateMachine, activity, open_runtime, workflow
from wayline.testing import VirtualClock


@activity(name="charge")
async def charge(amount: float) -> str:
    return f"receipt for {amount}"


class OrderVars(msgspec.Struct):
    """The order's variables: checked at every checkpoint, shown by describe as JSON."""

    amount: float = 0.0
    receipt: str | None = None


@workflow(name="order", vars=OrderVars)
async def order(ctx: RunContext, amount: float) -> str:
    ctx.vars.amount = amount
    receipt = await ctx.run(charge, amount)
    ctx.vars.receipt = receipt
    # Set by the workflow: checkpointed with the next step, then searchable.
    ctx.metadata["stage"] = "charged" if amount < 100 else "review"
    await ctx.wait_signal("ship")
    ctx.metadata["stage"] = "shipped"
    return receipt


# A state machine that starts a child execution: the child inherits the parent's metadata
# (its correlation id) and tags, plus parent_run_id.
audit = StateMachine({"StartAt": "Log", "States": {"Log": {"Type": "Pass", "End": True}}}, name="audit")
batch = StateMachine(
    {
        "StartAt": "Audit",
        "States": {
            "Audit": {
                "Type": "Task",
                "Resource": "arn:aws:states:::states:startExecution.sync:2",
                "Parameters": {"StateMachineArn": "audit", "Name": "audit-of-b-1", "Input": {}},
                "End": True,
            }
        },
    },
    name="batch",
)


async def main(path: str) -> None:
    async with open_runtime(path, workflows=[order, batch, audit], clock=VirtualClock()) as rt:
        for n, (customer, amount) in enumerate([("c1", 20.0), ("c2", 250.0), ("c1", 75.0)]):
            await rt.start(order, amount, run_id=f"o-{n}", metadata={"customer": customer}, tags=["web"])
        await rt.clock.sleep(1)  # every order is charged and waits for "ship"
        await rt.signal("o-0", "ship")
        await rt.get_handle("o-0").result()
        mine = await rt.list_runs(metadata={"customer": "c1"})
        print("c1:", [(r.run_id, r.metadata["stage"]) for r in mine])
        print("review:", [r.run_id for r in await rt.list_runs(metadata={"stage": "review"}, tag="web")])
        print("vars:", (await rt.describe("o-1")).vars)
        await (await rt.start(batch, {}, run_id="b-1", metadata={"correlation_id": "k-9"}, tags=["nightly"])).result()
        family = await rt.list_runs(metadata={"correlation_id": "k-9"})
        print("k-9:", sorted(r.run_id for r in family), (await rt.describe("audit-of-b-1")).tags)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(main(str(Path(tmp) / "context.db")))
