"""Child-process entry: ``python -m benchmarks._run <module:function> <params-json>``.

Each scenario runs in a fresh interpreter so one system's imports, threads,
caches and memory never colour another's numbers, and so peak RSS
(``ru_maxrss`` of this process) belongs to one scenario alone. The child prints
exactly one ``@@RESULT <json>`` line on stdout; the harness ignores anything
else a library might print.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import resource
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from ._common import NotReady, Skipped

RESULT_PREFIX = "@@RESULT "


def _run_coroutine(factory: Callable[[], Coroutine[Any, Any, Any]]) -> tuple[Any, str]:
    """Run on uvloop when it is installed (as wayline does), else on asyncio."""
    if os.environ.get("WAYLINE_BENCH_LOOP", "uvloop") == "uvloop":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(factory()), "uvloop"
    return asyncio.run(factory()), "asyncio"


def _load(ref: str) -> Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]:
    module_name, _, func_name = ref.partition(":")
    module = importlib.import_module(f"benchmarks.{module_name}")
    func: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]] = getattr(module, func_name)
    return func


def _unwrap(exc: BaseException) -> BaseException:
    """The single leaf of nested exception groups (task groups wrap what we raise)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def main(argv: list[str]) -> int:
    ref, params = argv[1], json.loads(argv[2])
    t0 = time.perf_counter()
    out: dict[str, Any]
    try:
        func = _load(ref)

        async def scenario() -> dict[str, Any]:
            return await func(params)

        metrics, loop_name = _run_coroutine(scenario)
        note = metrics.pop("note", None)
        out = {"status": "ok", "metrics": metrics, "note": note, "loop": loop_name}
    except BaseException as caught:  # a broken scenario is a row, never a crash
        exc = _unwrap(caught)
        if isinstance(exc, Skipped):
            out = {"status": "skipped", "reason": str(exc)}
        elif isinstance(exc, NotReady):
            out = {"status": "not ready", "reason": str(exc)}
        else:
            traceback.print_exception(caught, file=sys.stderr)
            reason = f"{type(exc).__name__}: {exc}".strip()
            out = {"status": "error", "reason": reason.splitlines()[0][:300]}
    out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    out["wall_s"] = time.perf_counter() - t0
    sys.stdout.write(RESULT_PREFIX + json.dumps(out) + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: peers leave worker threads and servers behind
    # whose shutdown can take longer than the scenario itself.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
