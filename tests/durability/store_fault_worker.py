"""A real process for the store fault tests: python store_fault_worker.py DB MODE [RUNS].

Every mode runs RUNS runs (default 20) of workflow "payload": three steps, each returning a
16 KB string, so that every checkpoint needs fresh space in the database. Lines on stdout
tell the test where the worker is; lines on stdin ("go", "exit") steer it.

``outage``: the runs stop in their second step until "go". READY once they all wait there.
After "go" the test has filled the disk: the worker prints DEGRADED once the store says it
cannot write, then what `rt.describe`, the `wayline.store.degraded` metric, `rt.start` and
`rt.signal` say meanwhile (DESCRIBE, METRIC, REFUSED), RECOVERED once the disk was freed, and
RESULT with every run's result, status and history once they have all ended.

``deleted``: like ``outage``, but the test deletes the database files before "go": the worker
prints GONE once the store notices, what `rt.start` says then (REFUSED, with COPY: where the
deleted file can still be read), and on "exit" how leaving `open_runtime` ends (CLOSE).

``wal-idle`` / ``wal-kept``: the runs run to their end (DONE); with ``wal-idle`` the worker
then waits for the store's idle checkpoint (CHECKPOINTED). Then it waits to be killed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from wayline import RunContext, activity, open_runtime, workflow
from wayline.persistence import SQLiteStore

SIZE = 16_000
GATE: dict[str, Any] = {}


def say(*parts: object) -> None:
    print(*parts, flush=True)


@activity(name="blob")
async def blob(i: int, k: int) -> str:
    if k == 1 and "go" in GATE:
        GATE["waiting"] += 1
        if GATE["waiting"] == GATE["runs"]:
            GATE["all_waiting"].set()
        await GATE["go"].wait()
    GATE["executed"] = GATE.get("executed", 0) + 1
    return f"{i}:{k}:" + "x" * SIZE


@workflow(name="payload")
async def payload(ctx: RunContext, i: int) -> int:
    total = 0
    for k in range(3):
        total += len(await ctx.run(blob, i, k))
    return total


def expected(i: int) -> int:
    return sum(len(f"{i}:{k}:") + SIZE for k in range(3))


class Watch(logging.Handler):
    """Turns the store's log records into events this worker waits on."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.events = {name: asyncio.Event() for name in ("degraded", "recovered", "gone", "checkpointed", "crash")}
        self.crashes: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.name == "wayline.store":
            if "Runs wait and go on" in text:
                self.events["degraded"].set()
            elif "accepts writes again" in text:
                self.events["recovered"].set()
            elif "was deleted" in text or "was replaced" in text:
                self.events["gone"].set()
            elif "idle checkpoint" in text and "busy=0" in text:
                self.events["checkpointed"].set()
        if "crashed" in text:
            self.crashes.append(text)


async def stdin_line() -> str:
    return (await asyncio.to_thread(sys.stdin.readline)).strip()


async def main(db: str, mode: str, runs: int) -> None:
    watch = Watch()
    for name in ("wayline", "wayline.store"):
        logging.getLogger(name).addHandler(watch)
    logging.getLogger("wayline.store").setLevel(logging.DEBUG)
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    gated = mode in ("outage", "deleted")
    if gated:
        GATE.update(go=asyncio.Event(), waiting=0, runs=runs, all_waiting=asyncio.Event())
    store = SQLiteStore(db, idle_checkpoint=None if mode == "wal-kept" else 0.3, meter_provider=meters)
    try:
        async with open_runtime(store, workflows=[payload], inbox_poll_interval=None) as rt:
            handles = [await rt.start(payload, i, run_id=f"r{i}") for i in range(runs)]
            if gated:
                await GATE["all_waiting"].wait()
                say("READY")
                assert await stdin_line() == "go"
                GATE["go"].set()
            if mode == "outage":
                await watch.events["degraded"].wait()
                say("DEGRADED")
                info = await rt.describe("r0")
                say("DESCRIBE", json.dumps({"status": info.status.value, "store": _plain(info.store_health)}))
                say("METRIC", json.dumps(_gauge(reader, "wayline.store.degraded")))
                await _refused(rt)
                await watch.events["recovered"].wait()
                say("RECOVERED")
            if mode == "deleted":
                await watch.events["gone"].wait()
                say("GONE", json.dumps(_plain(store.health())))
                await _refused(rt)
                say("EXECUTED", GATE["executed"])
                assert await stdin_line() == "exit"
                raise _Leave()
            results = [await h.result() for h in handles]
            infos = [await rt.describe(f"r{i}") for i in range(runs)]
            histories = [[type(e).__name__ async for e in rt.history(f"r{i}")] for i in range(runs)]
            say(
                "RESULT",
                json.dumps(
                    {
                        "results": results,
                        "expected": [expected(i) for i in range(runs)],
                        "statuses": [info.status.value for info in infos],
                        "resumed": [h for h in histories if "RunResumed" in h or "RunCrashed" in h],
                        "crashes": watch.crashes,
                        "health": _plain(store.health()),
                    }
                ),
            )
            if mode == "wal-idle":
                await watch.events["checkpointed"].wait()
                say("CHECKPOINTED")
            if mode.startswith("wal"):
                say("DONE")
                await asyncio.Event().wait()  # until killed
    except _Leave:
        pass
    except BaseException as exc:
        say("CLOSE", f"{type(exc).__name__}: {exc}")
        return
    say("CLOSE", "ok")


class _Leave(Exception):
    pass


async def _refused(rt: Any) -> None:
    """What a new run and a signal get while the store cannot write."""
    for what, call in (("start", rt.start(payload, 99, run_id="new")), ("signal", rt.signal("r0", "ping", 1))):
        try:
            await call
        except Exception as exc:
            say("REFUSED", what, json.dumps({"type": type(exc).__name__, "message": str(exc), **_copy(exc)}))
        else:
            say("ACCEPTED", what)


def _copy(exc: BaseException) -> dict[str, Any]:
    where = getattr(exc, "copy_from", None)
    return {"copy_from": where} if where else {}


def _plain(value: Any) -> Any:
    import msgspec

    return msgspec.to_builtins(value)


def _gauge(reader: InMemoryMetricReader, name: str) -> list[dict[str, Any]]:
    data = reader.get_metrics_data()
    points: list[dict[str, Any]] = []
    if data is None:
        return points
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    points += [
                        {"value": p.value, "attributes": dict(p.attributes or {})} for p in metric.data.data_points
                    ]
    return points


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 20))
