"""Crash at every store write, then restart, on PostgreSQL: the durability suite's scenarios
(tests/durability/test_crash_every_write.py) run on a fresh database for every crash point."""

from __future__ import annotations

from collections import Counter

import pytest

from _postgres import fresh_database
from _support import find_crash
from durability.test_crash_every_write import CASES, cancel_scenario, executions, reset, run_once
from wayline import RunStatus, open_runtime
from wayline.testing import FaultInjectingStore, VirtualClock

pytestmark = pytest.mark.anyio


def pg_store(url: str) -> object:
    from wayline.persistence import PostgresStore

    return PostgresStore(url)


@pytest.fixture
def anyio_backend() -> str:
    # The scenarios are the same on both loops (the durability suite runs them on both); here
    # each costs a database per crash point, so once is enough.
    return "asyncio"


@pytest.mark.parametrize("case", sorted(CASES))
async def test_crash_at_every_write_then_restart_gives_the_clean_result(pg_url: str, case: str) -> None:
    wf, inp, in_flight = CASES[case]
    reset()
    counter = FaultInjectingStore(pg_store(pg_url), crash_at=None)  # type: ignore[arg-type]
    clean_result = await run_once(counter, wf, inp)
    clean_counts = Counter(executions)
    writes = counter.writes
    assert writes >= 6

    for n in range(1, writes + 1):
        for when in ("before", "after"):
            reset()
            with fresh_database() as url:
                faulty = FaultInjectingStore(pg_store(url), crash_at=n, when=when)  # type: ignore[arg-type]
                try:
                    await run_once(faulty, wf, inp)
                except BaseException as exc:
                    if find_crash(exc) is None:
                        raise
                else:
                    pytest.fail(f"no crash at write {n} ({when})")
                assert faulty.crashed and faulty.writes == n
                result = await run_once(pg_store(url), wf, inp)
            where = f"crash at write {n} ({when})"
            assert result == clean_result, where
            extra = executions - clean_counts
            assert not (clean_counts - executions), f"{where}: steps never ran: {clean_counts - executions}"
            assert sum(extra.values()) <= in_flight, f"{where}: re-executed {extra}"
            assert max(extra.values(), default=0) <= 1, f"{where}: re-executed {extra}"


async def test_crash_at_every_write_of_a_cancelled_run(pg_url: str) -> None:
    from durability.test_crash_every_write import cancellable

    reset()
    counter = FaultInjectingStore(pg_store(pg_url), crash_at=None)  # type: ignore[arg-type]
    await cancel_scenario(counter, "step")
    clean_counts = Counter(executions)
    assert clean_counts == {"step0": 1, "forever": 1, "cleanup": 1}
    for n in range(1, counter.writes + 1):
        for when in ("before", "after"):
            reset()
            with fresh_database() as url:
                faulty = FaultInjectingStore(pg_store(url), crash_at=n, when=when)  # type: ignore[arg-type]
                try:
                    await cancel_scenario(faulty, "step")
                except BaseException as exc:
                    if find_crash(exc) is None:
                        raise
                else:
                    pytest.fail(f"no crash at write {n} ({when})")
                await cancel_scenario(pg_store(url), "step")
                async with open_runtime(url, workflows=[cancellable], clock=VirtualClock()) as rt:
                    info = await rt.describe("c")
                    kinds = [type(e).__name__ async for e in rt.history("c")]
            where = f"crash at write {n} ({when})"
            assert info.status is RunStatus.CANCELLED, where
            assert info.vars == {"cleanup": "cleaned after stop"}, where
            assert kinds[-1] == "RunCancelled" and kinds.count("RunCancelled") == 1, where
            extra = executions - clean_counts
            assert not (clean_counts - executions), f"{where}: missing {clean_counts - executions}"
            assert sum(extra.values()) <= 1 and max(extra.values(), default=0) <= 1, f"{where}: re-executed {extra}"
