"""Blocking code as steps, settings per call, typed inputs and signals, a step in flight.

- a plain ``def`` activity (a blocking client, file work) runs in the runtime's worker
  threads, with the retries and timeouts of an async one;
- ``activity.options(retry=..., timeout=..., name=...)`` sets them at one call site, without
  clashing with the activity's own keyword arguments;
- a `Decimal` and a `date` in the input come back as the annotation declares them, and a
  signal is decoded as the type the workflow waits for;
- ``rt.describe`` shows the step attempt running now.

Run it: ``python examples/sync_activities_and_options.py`` (it uses a temporary database).
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

import msgspec

from wayline import RetryPolicy, RunContext, activity, open_runtime, step_info, workflow


class Invoice(msgspec.Struct):
    customer: str
    amount: Decimal
    due: date


class Approval(msgspec.Struct):
    by: str
    approved: bool


failures = {"ledger": 1}  # the ledger is down for its first attempt
export_started = threading.Event()
slow_export = threading.Event()


@activity(name="write_ledger", retry=RetryPolicy(max_attempts=3, interval=0.05))
def write_ledger(invoice: Invoice) -> str:
    """A blocking call (a legacy client): runs in a worker thread, retried by its policy."""
    if failures["ledger"]:
        failures["ledger"] -= 1
        raise ConnectionError("ledger unavailable")
    return f"ledger entry for {invoice.customer}, attempt {step_info().attempt}"


@activity(name="export")
def export(invoice: Invoice, *, timeout: float) -> str:
    """Its own keyword argument is called ``timeout``: per-call options do not clash with it."""
    export_started.set()
    slow_export.wait(timeout)
    return f"exported {invoice.amount} (waited up to {timeout}s)"


@workflow(name="billing")
async def billing(ctx: RunContext, invoice: Invoice) -> dict[str, str]:
    assert isinstance(invoice.amount, Decimal) and isinstance(invoice.due, date)  # not str
    entry = await ctx.run(write_ledger, invoice)
    # Settings for this call only: its own retry policy, a step timeout, another step name.
    exported = await ctx.run(
        export.options(retry=RetryPolicy(max_attempts=2), timeout=30.0, name="export-eu"), invoice, timeout=5.0
    )
    approval = await ctx.wait_signal("approval", Approval)  # decoded as, and typed as, Approval
    return {"entry": entry, "export": exported, "approved by": approval.by}


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with open_runtime(Path(tmp) / "billing.db", workflows=[billing], activity_threads=4) as rt:
            invoice = Invoice("ada", Decimal("120.50"), date(2026, 12, 31))
            handle = await rt.start(billing, invoice, run_id="inv-1")
            await asyncio.to_thread(export_started.wait)  # the export runs (it waits for slow_export)
            (step,) = (await rt.describe("inv-1")).running
            print(f"running: step {step.step!r}, attempt {step.attempt}, for {time.time() - step.since:.1f}s")
            slow_export.set()
            await rt.signal("inv-1", "approval", Approval(by="grace", approved=True))
            for key, value in (await handle.result()).items():
                print(f"{key}: {value}")


if __name__ == "__main__":
    asyncio.run(main())
