"""Helpers shared by the test packages (importable because tests/ is on sys.path)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
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


async def crashed_at_every_write(
    folder: Path,
    writes: int,
    workload: Callable[[Any], Awaitable[Any]],
    *,
    reset: Callable[[], None] = lambda: None,
) -> AsyncIterator[tuple[Path, str]]:
    """For each of the ``writes`` store writes a clean ``workload(store)`` makes, and each side
    of its commit: a fresh SQLite file on which the workload crashed at that write (fails the
    test if it did not), and where ("crash at write 3 (after)"), for the test to restart on.
    ``reset`` runs before each crashed workload (clearing counters of side effects)."""
    from wayline.persistence import SQLiteStore
    from wayline.testing import FaultInjectingStore

    for n in range(1, writes + 1):
        for when in ("before", "after"):
            reset()
            path = folder / f"crash-{n}-{when}.db"
            try:
                await workload(FaultInjectingStore(SQLiteStore(path), crash_at=n, when=when))
            except BaseException as exc:
                if find_crash(exc) is None:
                    raise
            else:
                import pytest

                pytest.fail(f"no crash at write {n} ({when})")
            yield path, f"crash at write {n} ({when})"


def run_example(name: str, *, timeout: float = 120) -> list[str]:
    """Run ``examples/<name>`` as a user would (``python examples/<name>``); the lines it
    printed. Fails the test if it exits with an error."""
    import subprocess
    import sys

    example = Path(__file__).resolve().parents[1] / "examples" / name
    done = subprocess.run([sys.executable, str(example)], capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


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


async def until(condition: Any, *, within: float = 5.0) -> None:
    """Let the event loop run until ``condition()`` holds, checking it once per loop iteration
    (no sleep: for state a test cannot be told about, such as `Runtime.statistics`). Fails
    the test if that takes ``within`` seconds."""
    import asyncio

    import anyio

    with anyio.fail_after(within):
        while not condition():  # noqa: ASYNC110 - state that no event tells of
            await asyncio.sleep(0)


async def parked(rt: Any, runs: int = 1) -> None:
    """Once ``runs`` runs of ``rt`` are in memory, blocked on their waits alone, with those
    waits durable (`RuntimeStatistics.waiting_runs`), whatever the clock."""
    await until(lambda: rt.statistics().waiting_runs >= runs)


class Changes:
    """Lets a test wait until something the code under test changes holds, without polling:
    the code calls `changed()` after each change, and `until` checks its condition then.

    Module-level instances are fine: each wait makes its future in the running loop.
    """

    def __init__(self) -> None:
        self._waiters: list[Any] = []

    def changed(self) -> None:
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def until(self, condition: Any, *, within: float = 5.0) -> None:
        """Return once ``condition()`` holds (checked now and after each change); fail the
        test if that takes ``within`` seconds."""
        import asyncio

        import anyio

        with anyio.fail_after(within):
            while not condition():
                fut = asyncio.get_running_loop().create_future()
                self._waiters.append(fut)
                await fut


async def idle(rt: Any) -> None:
    """Return once every run of ``rt`` (on a `VirtualClock`) waits for something outside:
    the clock only moves when nothing else can run and the store is idle."""
    await rt.clock.sleep(1e-6)
