"""The worker process: opens the runtime on the demo database and drives the order run.

``--worker`` starts the run; ``--worker --resume`` only opens the runtime, which recovers
every unfinished run on entry, and waits for the order run to end. Either way the worker
reports through `say` and exits 0 if the run succeeded, 1 if it failed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from wayline import RunFailed, RunStatus, WaylineError, open_runtime
from wayline.runtime import configure_telemetry

from ._order import ORDER, RUN_ID, process_order, say

UNFINISHED = [RunStatus.PENDING, RunStatus.RUNNING, RunStatus.WAITING]


async def _work(db: str, resume: bool) -> int:
    async with open_runtime(db, workflows=[process_order]) as rt:
        if resume:
            # open_runtime has already restarted every unfinished run from its checkpoint
            # (their actors get going at the next await).
            say("opened")
            recovered = [info.run_id for info in await rt.list_runs(status=UNFINISHED)]
            say("recovered", runs=recovered)
            handle = rt.get_handle(RUN_ID)
        else:
            # Idempotent on run_id: if order-1001 exists (--keep), this is the same run.
            handle = await rt.start(process_order, ORDER, run_id=RUN_ID)
            say("started", run_id=handle.run_id)
        try:
            output = await handle.result()
        except RunFailed as exc:
            say("finished", status="FAILED", error=exc.error, cause=exc.cause)
            return 1
        say("finished", status="SUCCEEDED", output=output)
        return 0


class _Notes(logging.Handler):
    """What the exporters would log (a failure, a collector that takes no metrics), kept for
    the parent's summary instead of written into its narration."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def run_worker(db: str, resume: bool, otlp_endpoint: str | None = None) -> int:
    notes = _Notes()
    if otlp_endpoint:
        exporting = logging.getLogger("wayline.telemetry")
        exporting.addHandler(notes)
        exporting.propagate = False
    # Set up before the runtime opens (it checks once whether tracing is configured).
    telemetry = configure_telemetry(otlp_endpoint, service_name="wayline-demo") if otlp_endpoint else None
    try:
        return asyncio.run(_work(db, resume))
    except WaylineError as exc:
        say("error", error=type(exc).__name__, cause=str(exc))
        return 2
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group; the parent reports it
        return 130
    finally:
        if telemetry is not None:
            telemetry.shutdown()  # export what is left (a SIGKILLed worker never gets here)
            # What was really sent, for the parent to report (it claims nothing else).
            say("telemetry", status=dataclasses.asdict(telemetry.export_status()), notes=notes.messages)
