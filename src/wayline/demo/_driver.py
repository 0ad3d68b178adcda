"""The parent process: runs a worker, kills it with SIGKILL mid-run, resumes, and reports.

It learns what the worker does from the JSON lines the worker prints (see `_order.say`),
so it can kill at a precise point: right after ``charge_payment`` has been checkpointed,
while ``update_inventory`` and ``send_confirmation`` are running.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shlex
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from wayline import RunInfo, open_runtime
from wayline.persistence import Event, StepSucceeded

from ._database import DemoDatabase
from ._order import ORDER, RUN_ID, STEPS
from ._tracing import collector_unreachable, trace_lines

#: Seconds any one phase (a worker reaching the kill point, or finishing) may take.
PHASE_TIMEOUT = 30.0
#: Seconds to wait after the parallel steps started before killing: they take 0.6 s, so the
#: kill lands while both are in flight.
KILL_DELAY = 0.2
PARALLEL = ("update_inventory", "send_confirmation")


def _fancy() -> bool:
    return (sys.stdout.encoding or "").lower().replace("-", "") == "utf8"


BOOM = "\N{COLLISION SYMBOL}" if _fancy() else "***"
CHECK = "\N{CHECK MARK}" if _fancy() else "ok"


class DemoError(Exception):
    """The demo could not show what it set out to show; the message says what went wrong."""


@dataclass
class Observed:
    """What the parent has seen the workers do, across both worker processes."""

    starts: Counter[str] = field(default_factory=Counter)
    finished: dict[str, Any] | None = None
    recovered: list[str] | None = None
    error: dict[str, Any] | None = None
    #: The export status the last worker to exit reported (``--otlp-endpoint`` only).
    telemetry: dict[str, Any] | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class Worker:
    """A worker subprocess whose stdout events are shown and recorded as they arrive."""

    def __init__(self, proc: asyncio.subprocess.Process, seen: Observed) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.seen = seen
        self.stderr: list[str] = []
        self._readers = [
            asyncio.create_task(self._read_stdout()),
            asyncio.create_task(self._read_stderr()),
        ]

    @classmethod
    async def spawn(cls, db: str, seen: Observed, *, resume: bool, otlp_endpoint: str | None = None) -> Worker:
        args = [sys.executable, "-m", "wayline.demo", "--worker", "--db", db]
        if resume:
            args.append("--resume")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if otlp_endpoint:
            args += ["--otlp-endpoint", otlp_endpoint]
            # Export ended spans within 0.2 s (not the default 5 s), so the worker that is
            # killed has sent its finished steps before the kill.
            env.setdefault("OTEL_BSP_SCHEDULE_DELAY", "200")
        proc = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
        )
        return cls(proc, seen)

    async def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            try:
                event = json.loads(line)
            except ValueError:
                event = None
            if not isinstance(event, dict):
                print(f"   [worker {self.pid}] {line}")
                continue
            self._record(event)
            self.seen.changed.set()

    def _record(self, event: dict[str, Any]) -> None:
        seen, tag = self.seen, f"   [worker {self.pid}]"
        match event.get("kind"):
            case "activity":
                seen.starts[event["step"]] += 1
                print(f"{tag} activity  {event['step']}: {event['text']}")
            case "body":
                print(f"{tag} workflow  {event['text']}")
            case "started":
                print(f"{tag} rt.start(process_order, ORDER, run_id={event['run_id']!r})")
            case "opened":
                print(f"{tag} open_runtime(...) restarts every unfinished run from its checkpoint")
            case "recovered":
                seen.recovered = list(event["runs"])
            case "finished":
                seen.finished = event
                print(f"{tag} await handle.result() -> run {event['status']}")
            case "telemetry":
                seen.telemetry = {**event["status"], "notes": event.get("notes", [])}
            case "error":
                seen.error = event
                print(f"{tag} error: {event['error']}: {event['cause']}")

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.stderr.append(line)
            print(f"   [worker {self.pid} stderr] {line}")

    async def wait_for(self, condition: Callable[[], bool], what: str) -> bool:
        """Wait until ``condition()`` holds (True) or the worker exits first (False)."""
        deadline = time.monotonic() + PHASE_TIMEOUT
        exited = asyncio.ensure_future(self.proc.wait())
        try:
            while not condition():
                if exited.done():
                    await asyncio.gather(*self._readers)  # take in its last lines
                    return condition()
                self.seen.changed.clear()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DemoError(f"worker {self.pid} did not reach {what} within {PHASE_TIMEOUT:g}s")
                changed = asyncio.ensure_future(self.seen.changed.wait())
                await asyncio.wait({changed, exited}, timeout=left, return_when=asyncio.FIRST_COMPLETED)
                changed.cancel()
            return True
        finally:
            if not exited.done():
                exited.cancel()

    async def finish(self) -> int:
        """Wait for the worker to exit on its own; its exit code."""
        try:
            code = await asyncio.wait_for(self.proc.wait(), PHASE_TIMEOUT)
        except TimeoutError:
            self.proc.kill()
            raise DemoError(f"worker {self.pid} did not finish within {PHASE_TIMEOUT:g}s") from None
        await asyncio.gather(*self._readers)
        return code

    async def kill(self) -> int:
        # SIGKILL: no cleanup, no atexit, no flush; for the process, like a power cut.
        self.proc.kill()
        code = await self.proc.wait()
        await asyncio.gather(*self._readers)
        return code

    def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()


async def inspect(db: str) -> tuple[RunInfo, list[Event]]:
    """Read the run's checkpointed state and history from the database.

    A runtime opened with no workflows registered cannot resume anything, so this only
    reads; silence its note that it found a run it cannot resume.
    """
    log = logging.getLogger("wayline")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        async with open_runtime(db, workflows=()) as rt:
            info = await rt.describe(RUN_ID)
            events: list[Event] = [e async for e in rt.history(RUN_ID)]
    finally:
        log.setLevel(level)
    return info, events


def _step_results(events: list[Event]) -> dict[str, Any]:
    return {e.step: e.result for e in events if isinstance(e, StepSucceeded)}


def _print_history(events: list[Event]) -> None:
    t0 = events[0].ts if events else 0.0
    # In time order: the events of parallel steps are stored as each checkpoint commits them
    # (both of update_inventory's, then both of send_confirmation's), not as they happened.
    # The sort is stable, so events of one checkpoint keep their recorded order.
    for e in sorted(events, key=lambda e: e.ts):
        name = type(e).__name__
        step = getattr(e, "step", "")
        attempt = getattr(e, "attempt", None)
        extra = f"attempt {attempt}" if attempt is not None else ""
        if name == "RunResumed":
            extra = getattr(e, "reason", "")
        elif name in ("RunFailed", "StepFailed"):
            extra = f"{getattr(e, 'error', '')}: {getattr(e, 'cause', '')}"
        offset = f"+{e.ts - t0:.2f}s"
        print(f"     {offset:>7}  {name:<14} {step:<18} {extra}".rstrip())


STEP_1 = "1. Start a worker process. It opens the runtime on {db} and starts run {run_id}."
STEP_2 = """
2. charge_payment is checkpointed (a run starts its next steps only after the commit),
   and update_inventory and send_confirmation are running. Kill the worker now."""
STEP_3 = "3. What the database holds now: run {run_id} is {status}, {steps} steps checkpointed:"
STEP_4 = """
4. Start a new worker on the same database. open_runtime() recovers every unfinished run:
   the workflow body is re-entered, completed steps return their checkpointed results
   without running, and the run goes on from the first step that had not completed."""
HISTORY_NOTE = """\
   (a step's StepStarted is recorded together with its outcome, so the attempts cut off by
    the kill left no event; their re-runs are attempt 1 again)"""
INSPECT = """
   The database stays for you to look at with the `wayline` command:
     wayline --db {db} runs show {run_id}
     wayline --db {db} runs history {run_id}"""
INSPECT_TRACE = """     wayline --db {db} runs trace {run_id} --trace-url 'http://localhost:16686/trace/{{trace_id}}'"""
ALREADY_DONE = """\
   (the run had already finished in this database: starting it again with the same
    run_id returned the existing run, and no activity ran)"""


@dataclass
class Summary:
    """How the demo went, for ``--json``: one document a script can check."""

    database: str
    killed: bool = False
    status: str | None = None
    output: Any = None
    elapsed_s: float | None = None
    #: Per activity: how many times it ran (across both workers) and was checkpointed.
    activities: dict[str, dict[str, int]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    #: With ``--otlp-endpoint``: the endpoint, why it was unreachable (then nothing was
    #: exported), and the export status the last worker reported.
    otlp: dict[str, Any] | None = None

    def to_json(self, code: int) -> dict[str, Any]:
        return {
            "ok": code == 0,
            "database": self.database,
            "run_id": RUN_ID,
            "status": self.status,
            "output": self.output,
            "killed": self.killed,
            "elapsed_s": self.elapsed_s,
            "activities": self.activities,
            "problems": self.problems,
            "otlp": self.otlp,
        }


async def run_demo(
    demo_db: DemoDatabase, *, kill: bool, otlp_endpoint: str | None = None, summary: Summary | None = None
) -> int:
    """The whole demo; 0 if the run finished as an uninterrupted run would have.

    ``summary``, if given, is filled in with the outcome as it becomes known.
    """
    db, keep = demo_db.path, demo_db.reused
    summary = summary if summary is not None else Summary(db)
    print("wayline demo: an order workflow that survives kill -9")
    print(f"   database: {db}  ({demo_db.origin})")
    if otlp_endpoint:
        why = collector_unreachable(otlp_endpoint)
        if why is not None:
            print(f"   OTLP: no collector at {otlp_endpoint} ({why}); the workers export nothing this time")
            summary.otlp = {"endpoint": otlp_endpoint, "unreachable": why, "last_worker": None}
            otlp_endpoint = None
    seen = Observed()
    workers: list[Worker] = []
    began = time.monotonic()
    try:
        print("\n" + STEP_1.format(db=os.path.basename(db), run_id=RUN_ID))
        first = await Worker.spawn(db, seen, resume=False, otlp_endpoint=otlp_endpoint)
        workers.append(first)
        killed = await _kill_mid_run(first, seen, keep=keep) if kill else False
        if killed:
            await _show_checkpoint(db)
            print(STEP_4)
            second = await Worker.spawn(db, seen, resume=True, otlp_endpoint=otlp_endpoint)
            workers.append(second)
            await _finish(second, seen)
        elif first.proc.returncode is None:
            await _finish(first, seen)
        summary.killed = killed
        code = await _report(db, seen, summary, keep=keep, elapsed=time.monotonic() - began)
        if otlp_endpoint:
            summary.otlp = {"endpoint": otlp_endpoint, "unreachable": None, "last_worker": seen.telemetry}
            await _show_trace(db, otlp_endpoint, seen, killed)
        print(INSPECT.format(db=shlex.quote(db), run_id=RUN_ID))
        if otlp_endpoint:
            print(INSPECT_TRACE.format(db=shlex.quote(db), run_id=RUN_ID))
        return code
    except DemoError as exc:
        print(f"\nFAILED: {exc}")
        summary.problems.append(str(exc))
        return 1
    finally:
        for w in workers:
            w.stop()


async def _kill_mid_run(worker: Worker, seen: Observed, *, keep: bool) -> bool:
    """SIGKILL the worker once both parallel steps are running; False if there was no
    such moment (the run had already finished, with --keep)."""
    if not await worker.wait_for(lambda: all(seen.starts[s] for s in PARALLEL), "the parallel steps"):
        code = await worker.finish()
        if code == 0 and keep and seen.finished is not None:
            return False
        if code == 0:
            raise DemoError(f"worker {worker.pid} finished before the parallel steps started")
        _worker_failed(worker, seen, code)
    await asyncio.sleep(KILL_DELAY)
    print(STEP_2)
    code = await worker.kill()
    if seen.finished is not None:
        print(f"   the worker finished before the kill landed (exit {code}); nothing to resume")
        return False
    print(f"   {BOOM} worker {worker.pid} killed with SIGKILL (exit code {code})")
    return True


async def _finish(worker: Worker, seen: Observed) -> None:
    code = await worker.finish()
    if code != 0:
        _worker_failed(worker, seen, code)


async def _show_checkpoint(db: str) -> None:
    info, events = await inspect(db)
    print("\n" + STEP_3.format(run_id=RUN_ID, status=info.status, steps=info.steps))
    for step, result in _step_results(events).items():
        print(f"     {step:<18} {json.dumps(result)}")
    print(f"   vars: {json.dumps(info.vars)}")


async def _show_trace(db: str, endpoint: str, seen: Observed, killed: bool) -> None:
    """Name the run's trace and say what the workers reported sending to ``endpoint``."""
    log = logging.getLogger("wayline")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        async with open_runtime(db, workflows=()) as rt:
            record = await rt.store.get_run(RUN_ID)
    finally:
        log.setLevel(level)
    traceparent = record.trace.get("traceparent", "") if record is not None else ""
    parts = traceparent.split("-")
    rerun = [step for step in PARALLEL if seen.starts[step] > 1] if killed else []
    for line in trace_lines(parts[1] if len(parts) == 4 else None, endpoint, seen.telemetry, killed, rerun):
        print(line)


async def _report(db: str, seen: Observed, summary: Summary, *, keep: bool, elapsed: float) -> int:
    killed = summary.killed
    info, events = await inspect(db)
    summary.status, summary.output, summary.elapsed_s = info.status.value, info.output, round(elapsed, 2)
    print(
        f"\n{5 if killed else 2}. Result: run {RUN_ID} {info.status} after {elapsed:.1f}s"
        + (" (kill and restart included)" if killed else "")
    )
    print(f"   output: {json.dumps(info.output)}")
    if keep and not sum(seen.starts.values()):
        print(ALREADY_DONE)
    summary.activities = _print_executions(seen, events, killed)
    print("   history (rt.history):")
    _print_history(events)
    if killed:
        print(HISTORY_NOTE)
    problems = [] if keep else _check(info, events, seen, killed)
    if info.status != "SUCCEEDED":
        problems.append(f"the run ended {info.status}: {info.error}: {info.cause}")
    summary.problems += problems
    if problems:
        print("\nFAILED:\n" + "\n".join(f"   - {p}" for p in problems))
        return 1
    if killed:
        print(f"\n{CHECK} the run finished from its checkpoint; completed steps did not run again.")
    else:
        print(f"\n{CHECK} the run finished.")
    return 0


def _print_executions(seen: Observed, events: list[Event], killed: bool) -> dict[str, dict[str, int]]:
    succeeded = Counter(getattr(e, "step", "") for e in events if type(e).__name__ == "StepSucceeded")
    print("   activity            executions  checkpointed")
    for step in STEPS:
        runs = seen.starts[step]
        note = ""
        if killed and step in PARALLEL and runs > 1:
            note = "  in flight at the kill, so run again (at least once)"
        elif killed and runs == 1 and step not in PARALLEL:
            note = "  completed before the kill, not run again"
        print(f"   {step:<20}{runs:>10}  {succeeded[step]:>12}{note}")
    return {step: {"executions": seen.starts[step], "checkpointed": succeeded[step]} for step in STEPS}


def _check(info: RunInfo, events: list[Event], seen: Observed, killed: bool) -> list[str]:
    problems: list[str] = []
    succeeded = Counter(getattr(e, "step", "") for e in events if type(e).__name__ == "StepSucceeded")
    for step in STEPS:
        if succeeded[step] != 1:
            problems.append(f"{step} was checkpointed {succeeded[step]} times, expected once")
        # Only the steps in flight at the kill may run twice; every other step exactly once.
        limit = 2 if killed and step in PARALLEL else 1
        if not 1 <= seen.starts[step] <= limit:
            problems.append(f"{step} ran {seen.starts[step]} times, expected 1" + (" or 2" if limit == 2 else ""))
    if killed and seen.recovered != [RUN_ID]:
        problems.append(f"the second worker recovered {seen.recovered}, expected [{RUN_ID!r}]")
    expected = {
        "order_id": ORDER["id"],
        "charged": 42.5,
        "charge_id": "ch_1001",
        "items_updated": 2,
        "confirmation": "msg_1001",
    }
    if info.status == "SUCCEEDED" and info.output != expected:
        problems.append(f"output {info.output} differs from an uninterrupted run's {expected}")
    return problems


def _worker_failed(worker: Worker, seen: Observed, code: int) -> NoReturn:
    detail = ""
    if seen.error:
        detail = f": {seen.error['error']}: {seen.error['cause']}"
    elif seen.finished and seen.finished.get("status") == "FAILED":
        detail = f": the run failed: {seen.finished.get('error')}: {seen.finished.get('cause')}"
    elif worker.stderr:
        detail = " (its stderr is shown above)"
    raise DemoError(f"worker {worker.pid} exited with code {code}{detail}")
