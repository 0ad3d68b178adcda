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
