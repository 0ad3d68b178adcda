"""wayline's ASL interpreter: conformance-case throughput and a durable 10-state machine.

The conformance rate uses the interpreter alone (``wayline.runtime.asl``: a
``StateMachine``, the in-memory ``LocalHost`` and ``execute``), the same thing
moto's interpreter does; the 10-state figure runs machines as durable runs of
the runtime (``open_runtime(workflows=[StateMachine(...)])``), checkpointed
after every transition.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import random
import time
from typing import Any

from . import _asl_cases
from ._common import Metrics, NotReady, Params, db_file


def _interpreter() -> tuple[Any, Any, Any, type[BaseException]]:
    try:
        from wayline.runtime.asl import LocalHost, StateMachine, execute
    except ImportError as exc:
        missing = "wayline.runtime.asl has no StateMachine/LocalHost/execute yet"
        raise NotReady(f"{missing} ({exc})") from exc
    try:
        from wayline.runtime.asl import StatesError
    except ImportError:
        StatesError = _NoSuchError
    return StateMachine, LocalHost, execute, StatesError


class _NoSuchError(Exception):
    """Never raised: used when the interpreter has no StatesError to catch."""


def _machine(state_machine: Any, definition: dict[str, Any], name: str) -> Any:
    try:
        return state_machine(definition, name=name)
    except TypeError:  # an interpreter-level StateMachine may not take a name
        return state_machine(definition)


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def conformance(params: Params) -> Metrics:
    """Executions/s over the conformance cases (definitions that fail are counted, not run)."""
    state_machine, local_host, execute, states_error = _interpreter()
    cases, waits = _asl_cases.load_cases(int(params["cases"]), int(params["seed"]))
    machines = []
    rejected = 0
    for case in cases:
        try:
            machine = _machine(state_machine, case.definition, "case")
        except Exception:
            rejected += 1
            continue
        machines.append((machine, case.input, case.expected_status))
    if not machines:
        raise RuntimeError("wayline rejected every case definition")
    failed = errors = matched = 0
    t0 = time.perf_counter()
    for machine, case_input, expected in machines:
        try:
            await _maybe_await(execute(machine, case_input, local_host()))
            status = "SUCCEEDED"
        except states_error:
            failed += 1  # a FAILED execution (StatesError): executed all the same
            status = "FAILED"
        except Exception:
            errors += 1
            status = "ERROR"
        matched += status == expected
    elapsed = time.perf_counter() - t0
    return {
        "executions_per_s": len(machines) / elapsed,
        "executions": len(machines),
        "rejected_definitions": rejected,
        "failed": failed,
        "errors": errors,
        "status_matches_aws": matched,
        "note": (
            f"{len(machines)} cases run ({failed} FAILED, {errors} other errors; "
            f"status as on AWS: {matched}), "
            f"{rejected} definitions rejected (excluded), {waits} Wait cases left out"
        ),
    }


async def ten_states(params: Params) -> Metrics:
    """E concurrent durable runs of a 10-state Pass machine on one SQLite file."""
    try:
        from wayline import StateMachine, open_runtime
    except ImportError as exc:
        raise NotReady(f"wayline has no StateMachine/open_runtime yet ({exc})") from exc
    executions = int(params["executions"])
    rng = random.Random(params["seed"])
    inputs = [{"input": rng.randrange(1 << 30)} for _ in range(executions)]
    sm = StateMachine(_asl_cases.ten_states(), name="bench_ten")
    async with contextlib.AsyncExitStack() as stack:
        rt = await stack.enter_async_context(open_runtime(str(db_file(params, "wayline.db")), workflows=[sm]))
        t0 = time.perf_counter()
        # Started concurrently, as in the throughput suite: starts group-commit too.
        handles = await asyncio.gather(*(rt.start(sm, inputs[i], run_id=f"x{i}") for i in range(executions)))
        results = await asyncio.gather(*(h.result() for h in handles))
        elapsed = time.perf_counter() - t0
        try:
            async with asyncio.timeout(15):  # same task that entered the runtime
                await stack.aclose()
        except TimeoutError:
            pass
    expected = {"step": 9, "input": inputs[0]["input"]}
    if len(results) != executions or results[0].get("s9") != expected:
        raise RuntimeError(f"wrong 10-state output: {results[0]!r}")
    return {
        "executions_per_s": executions / elapsed,
        "transitions_per_s": executions * 10 / elapsed,
        "seconds": elapsed,
        "note": f"{executions} concurrent runs, durable; {executions * 10 / elapsed:,.0f} states/s",
    }


async def map_items(params: Params) -> Metrics:
    """One durable run whose Map state runs N items of one Task each: INLINE (items inside the
    run) or DISTRIBUTED (every item a child run with its own checkpoints and history)."""
    try:
        from wayline import StateMachine, open_runtime
    except ImportError as exc:
        raise NotReady(f"wayline has no StateMachine/open_runtime yet ({exc})") from exc
    items, mode = int(params["items"]), str(params["mode"])

    async def work(n: int) -> int:
        return n + 1

    processor: dict[str, Any] = {
        "StartAt": "Work",
        "States": {"Work": {"Type": "Task", "Resource": "work", "End": True}},
    }
    if mode == "DISTRIBUTED":
        processor["ProcessorConfig"] = {"Mode": "DISTRIBUTED"}
    sm = StateMachine(
        {"StartAt": "Fan", "States": {"Fan": {"Type": "Map", "ItemProcessor": processor, "End": True}}},
        name="bench_map",
        resources={"work": work},
    )
    rng = random.Random(params["seed"])
    data = [rng.randrange(1 << 30) for _ in range(items)]
    async with contextlib.AsyncExitStack() as stack:
        rt = await stack.enter_async_context(open_runtime(str(db_file(params, "wayline.db")), workflows=[sm]))
        t0 = time.perf_counter()
        out = await (await rt.start(sm, data, run_id="map")).result()
        elapsed = time.perf_counter() - t0
        runs = len(await rt.list_runs())
    if out != [n + 1 for n in data]:
        raise RuntimeError("wrong Map output")
    return {
        "items_per_s": items / elapsed,
        "seconds": elapsed,
        "note": f"{items} items, {mode.lower()}; {runs} runs in the store",
    }
