"""Helpers shared by the test packages (importable because tests/ is on sys.path)."""

from __future__ import annotations

from typing import Any

from wayline.testing import SimulatedCrash


def find_crash(exc: BaseException) -> SimulatedCrash | None:
    """The `SimulatedCrash` inside ``exc`` (possibly nested in exception groups)."""
    if isinstance(exc, SimulatedCrash):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = find_crash(inner)
            if found is not None:
                return found
    return None


def event_types(events: list[Any]) -> list[str]:
    return [type(e).__name__ for e in events]


async def absorb_closed_runtime_futures() -> None:
    """Collect garbage now, dropping only 'never retrieved' `RuntimeClosedError` reports.

    Works around the bug pinned by runtime/test_replay.py::
    test_closing_after_a_crash_leaves_no_unretrieved_exceptions: after a crash, futures of
    cancelled ``handle.result()`` waiters get an exception nobody retrieves, and asyncio reports
    it whenever they are collected, failing whichever test runs then. Other reports pass on.
    """
    import asyncio
    import gc

    from wayline._errors import RuntimeClosedError

    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    others: list[dict[str, Any]] = []

    def handler(_loop: Any, context: dict[str, Any]) -> None:
        if not isinstance(context.get("exception"), RuntimeClosedError):
            others.append(context)

    loop.set_exception_handler(handler)
    try:
        gc.collect()
    finally:
        loop.set_exception_handler(previous)
    for context in others:
        loop.call_exception_handler(context)
