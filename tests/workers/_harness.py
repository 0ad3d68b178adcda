"""Worker subprocesses a test starts, pauses, kills; and the executions they recorded."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import pytest

WORKER_PROC = Path(__file__).with_name("worker_proc.py")
SELECT = "SELECT run_id, step, worker_id, started, ended FROM executions"


class Proc:
    """``python worker_proc.py <args>`` with its stdout and stderr in files (a pipe nobody
    reads would fill up and block the process); read with `output` and `log`."""

    def __init__(self, name: str, args: Sequence[str], folder: Path) -> None:
        self.name = name
        self.out_path = folder / f"{name}.out"
        self.err_path = folder / f"{name}.err"
        with self.out_path.open("wb") as out, self.err_path.open("wb") as err:
            self.proc = subprocess.Popen([sys.executable, str(WORKER_PROC), *args], stdout=out, stderr=err)
        self.paused = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.out_path.read_text(encoding="utf-8", errors="replace")

    def log(self) -> str:
        return self.err_path.read_text(encoding="utf-8", errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def describe(self) -> str:
        code = self.proc.poll()
        state = "running" if code is None else f"exited with {code}"
        return f"{self.name} ({state}); stdout:\n{self.output()[-2000:]}\nstderr:\n{self.log()[-4000:]}"

    async def line(self, prefix: str, *, within: float = 30.0) -> str:
        """The rest of the first stdout line starting with ``prefix``, once it is there. Fails
        the test if the process exits first or says nothing of the kind ``within`` seconds."""
        deadline = time.monotonic() + within
        while True:
            for text in self.output().splitlines():
                if text.startswith(prefix):
                    return text[len(prefix) :].strip()
            if not self.alive():
                pytest.fail(f"no {prefix!r} line before the process ended: {self.describe()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {prefix!r} line within {within}s: {self.describe()}")
            await asyncio.sleep(0.01)

    async def logged(self, condition: Callable[[str], bool], *, within: float = 30.0, what: str) -> str:
        """The stderr text, once ``condition(text)`` holds; fails the test after ``within`` s."""
        deadline = time.monotonic() + within
        while not condition(text := self.log()):
            if time.monotonic() > deadline:
                pytest.fail(f"{what}: not logged within {within}s: {self.describe()}")
            await asyncio.sleep(0.02)
        return text

    async def exited(self, *, within: float = 30.0) -> int:
        deadline = time.monotonic() + within
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                pytest.fail(f"still running after {within}s: {self.describe()}")
            await asyncio.sleep(0.01)
        return self.proc.returncode

    def kill9(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        assert self.proc.wait(timeout=30) == -signal.SIGKILL

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)
        self.paused = False

    def close(self) -> None:
        if self.proc.poll() is None:
            if self.paused:
                os.kill(self.pid, signal.SIGCONT)
            self.proc.kill()
        self.proc.wait(timeout=30)


def trouble(procs: Iterable[Proc]) -> list[str]:
    """Log lines no scenario here should cause: a traceback, or an inbox message set aside
    (a message that could not be delivered: a store call that failed for no good reason)."""
    return [
        f"{proc.name}: {line}"
        for proc in procs
        for line in proc.log().splitlines()
        if "Traceback" in line or "set aside" in line
    ]


class Procs:
    """The processes one test started; all of them are gone when the test ends."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.started: list[Proc] = []

    def worker(
        self,
        store: str,
        record: str,
        worker_id: str,
        *,
        lease: float = 1.0,
        loop: str = "asyncio",
        max_runs: int | None = None,
        workflows: Sequence[str] | None = None,
        passivate_after: float | None = None,
    ) -> Proc:
        args = ["worker", store, record, worker_id, str(lease), "--loop", loop]
        if max_runs is not None:
            args += ["--max-runs", str(max_runs)]
        if workflows is not None:
            args += ["--workflows", ",".join(workflows)]
        if passivate_after is not None:
            args += ["--passivate-after", str(passivate_after)]
        return self._add(Proc(worker_id, args, self.folder))

    def client(self, store: str, record: str, workflow: str, run_id: str, input: str, *, then: str) -> Proc:
        args = ["client", store, record, workflow, run_id, input, "--then", then]
        return self._add(Proc(f"client-{run_id}", args, self.folder))

    def _add(self, proc: Proc) -> Proc:
        self.started.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.started:
            proc.close()


async def ready(*procs: Proc, within: float = 30.0) -> None:
    """Once every worker of ``procs`` has opened its runtime (and registered)."""
    for proc in procs:
        assert await proc.line("ready", within=within) == proc.name


class Execution(NamedTuple):
    run_id: str
    step: int
    worker_id: str
    started: float
    ended: float


class Executions:
    """The ``executions`` table the workers write (worker_proc.py), read by the test."""

    def __init__(self, where: str) -> None:
        self.where = where
        self._conn: Any = None

    @property
    def postgres(self) -> bool:
        return self.where.startswith(("postgresql://", "postgres://"))

    async def open(self) -> None:
        if self.postgres:
            import asyncpg

            self._conn = await asyncpg.connect(self.where, server_settings={"application_name": "test reader"})
        else:
            self._conn = sqlite3.connect(self.where, timeout=30, isolation_level=None)

    async def close(self) -> None:
        if self._conn is not None:
            if self.postgres:
                await self._conn.close()
            else:
                self._conn.close()

    async def fetch(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows of any query on the test's database (the runtime's tables included)."""
        if self.postgres:
            return [tuple(r) for r in await self._conn.fetch(sql)]
        return list(self._conn.execute(sql).fetchall())

    async def rows(self) -> list[Execution]:
        if self.postgres:
            return [Execution(*r) for r in await self._conn.fetch(SELECT)]
        return [Execution(*r) for r in self._conn.execute(SELECT).fetchall()]

    async def until(
        self, condition: Callable[[list[Execution]], bool], *, within: float = 30.0, what: str = "executions"
    ) -> list[Execution]:
        """The rows, once ``condition(rows)`` holds; fails the test after ``within`` seconds."""
        deadline = time.monotonic() + within
        while True:
            rows = await self.rows()
            if condition(rows):
                return rows
            if time.monotonic() > deadline:
                pytest.fail(f"{what}: not within {within}s ({len(rows)} rows)")
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def reading(where: str) -> AsyncIterator[Executions]:
    executions = Executions(where)
    await executions.open()
    try:
        yield executions
    finally:
        await executions.close()


def by_step(rows: Iterable[Execution]) -> dict[tuple[str, int], list[Execution]]:
    groups: dict[tuple[str, int], list[Execution]] = defaultdict(list)
    for row in rows:
        groups[row.run_id, row.step].append(row)
    return groups


def concurrent_on_two_workers(rows: Iterable[Execution]) -> list[tuple[Execution, Execution]]:
    """Every pair of executions of one (run, step) on two workers whose [started, ended] overlap."""
    found = []
    for group in by_step(rows).values():
        for a, b in itertools.combinations(group, 2):
            if a.worker_id != b.worker_id and a.started < b.ended and b.started < a.ended:
                found.append((a, b))
    return found


def workers_of(rows: Iterable[Execution], run_id: str) -> set[str]:
    return {row.worker_id for row in rows if row.run_id == run_id}


async def step_results(rt: Any, run_id: str) -> list[Any]:
    """The results of a run's steps as its history stores them, in order (one per step
    when every commit came from the run's owner of the time)."""
    from wayline.persistence import StepSucceeded

    return [event.result async for event in rt.history(run_id) if isinstance(event, StepSucceeded)]


UNFINISHED = (
    "SELECT run_id, status, owner, fence FROM wayline.runs "
    "WHERE status NOT IN ('SUCCEEDED', 'FAILED', 'CANCELLED') ORDER BY run_id"
)


async def all_results(
    handles: Sequence[Any], seconds: float, executions: Executions, workers: Sequence[Proc]
) -> list[Any]:
    """Every run's result (``handle.result()``), in order. If that takes ``seconds``, fails the
    test with what explains it: the unfinished runs (status, owner, fence) as the
    PostgreSQL database holds them, and the workers' logs."""
    try:
        return await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), timeout=seconds)
    except TimeoutError:
        stuck = await executions.fetch(UNFINISHED)
        logs = "\n".join(w.describe() for w in workers)
        pytest.fail(f"runs unfinished after {seconds}s (run, status, owner, fence): {stuck}\n{logs}")


async def within(awaitable: Awaitable[Any], seconds: float, what: str) -> Any:
    try:
        return await asyncio.wait_for(awaitable, timeout=seconds)
    except TimeoutError:
        pytest.fail(f"{what}: not within {seconds}s")
