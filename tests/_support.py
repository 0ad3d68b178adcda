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


def kill_9_when(proc: Any, ready: Any, within: float = 60.0) -> None:
    """Wait until ``ready()`` is true of a worker subprocess, then kill it with SIGKILL.

    Fails the test if the worker exits first or makes no progress ``within`` seconds. The
    worker is gone and its pipes are closed afterwards, whatever happened.
    """
    import os
    import signal
    import time

    import pytest

    try:
        deadline = time.monotonic() + within
        while not ready():
            if proc.poll() is not None:
                pytest.fail(f"worker exited early: {proc.communicate()}")
            if time.monotonic() > deadline:
                pytest.fail("worker made no progress")
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
