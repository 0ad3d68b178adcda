"""An ``every=`` schedule fired by three real worker processes on one PostgreSQL database, on
the real clock, one of them killed with SIGKILL half-way.

What the design promises (`wayline.runtime._schedules`, `._schedule_pass`): every owning
runtime runs a pass over the schedule when it comes due, and a pass's decisions are stored by
one compare-and-swap on the schedule's revision, so each fire instant is decided by exactly one
worker; its run's id is made from the schedule id and the instant, so the run is created once
whoever starts it (and a fire whose decision committed but whose run a dying worker never
created is started again by the next pass, from the record's ``starting``). A schedule is not
leased to a worker: when one dies the others' passes go on at the next due time, so with
``overlap="allow_all"`` (nothing waits for a run to end) no fire is missed at all, the kill
included. What the lease takeover explains is only the runs the dead worker held: they finish
on another worker once its lease lapses, and a step it ran without its checkpoint committing
may run again there (at-least-once).
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest

from wayline import open_runtime
from wayline.persistence import RunStatus
from wayline.runtime._schedule_spec import fire_run_id

from ._harness import Execution, Proc, Procs, reading, ready, trouble
from .worker_proc import WORKFLOWS, chain, chain_result

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX"),
]

LEASE = 1.0
EVERY = 0.5
FIRES = 29  # 14 s of fires: both ends of the window included
KILL_AFTER = 12  # runs seen started before the kill (half as many under skip)
#: The schedule's runs not yet ended, and the worker holding each.
HELD = (
    "SELECT run_id, owner FROM wayline.runs WHERE run_id LIKE 'tick@%' "
    "AND status NOT IN ('SUCCEEDED', 'FAILED', 'CANCELLED')"
)


@dataclass
class Scenario:
    """What `fire_and_kill` saw."""

    expected: list[float]  # the fire instants, start_at..end_at
    found: dict[str, float]  # run id -> the fire instant it was started for
    info: Any  # the schedule's describe() once every fire was processed
    runs: dict[str, Any]  # run id -> its RunInfo, once ended
    rows: list[Execution]
    victim: Proc
    survivors: list[Proc]
    killed_at: float
    orphans: set[str]  # the runs the victim held when it was killed


async def fire_and_kill(pg_url: str, procs: Procs, overlap: str, step_ms: int) -> Scenario:
    """Three workers fire schedule ``tick`` (one step of ``step_ms`` per run) every EVERY s
    for FIRES fires; after KILL_AFTER fires, a worker holding one of its runs mid-step is
    killed. Returns once every fire is processed and every run has ended."""
    workers = [procs.worker(pg_url, pg_url, f"w{i}", lease=LEASE) for i in range(3)]
    await ready(*workers)
    async with reading(pg_url) as executions, open_runtime(pg_url, workflows=WORKFLOWS, worker=False) as client:
        # The fire instants are fixed in advance: start_at..end_at, both included.
        start = math.ceil(time.time()) + 2.0
        end = start + (FIRES - 1) * EVERY
        schedule = await client.create_schedule(
            "tick", chain, [7, 1, step_ms], every=EVERY, overlap=overlap, start_at=start, end_at=end
        )

        async def fired() -> dict[str, float]:
            runs = await client.list_runs(workflow="chain")
            return {r.run_id: r.metadata["scheduled_at"] for r in runs if r.metadata.get("schedule_id") == "tick"}

        async def until(condition: Any, seconds: float, what: str) -> Any:
            deadline = time.monotonic() + seconds
            while not (value := await condition()):
                if time.monotonic() > deadline:
                    logs = "\n".join(w.describe() for w in workers)
                    pytest.fail(f"{what}: not within {seconds}s ({await fired()})\n{logs}")
                await asyncio.sleep(0.02)
            return value

        async def processed() -> Any:
            info = await schedule.describe()
            return info if info.started + info.skipped + info.missed >= FIRES else None

        async def held() -> list[tuple[str, str]]:
            return [(r, o) for r, o in await executions.fetch(HELD) if o]

        # All three live: fires go on; then a worker holding a run mid-step is killed.
        await until(
            lambda: _at_least(fired, KILL_AFTER if overlap == "allow_all" else KILL_AFTER // 2),
            start - time.time() + KILL_AFTER * EVERY + 10,
            "fires before the kill",
        )
        victim_name = (await until(held, 10, "a run of the schedule held mid-step"))[0][1]
        victim = next(w for w in workers if w.name == victim_name)
        killed_at = time.time()
        victim.kill9()
        orphans = {run for run, owner in await executions.fetch(HELD) if owner == victim.name}

        info = await until(processed, end - time.time() + LEASE + 15, "every fire processed")
        await asyncio.sleep(2 * EVERY)  # a fire after end_at, or one started twice, would show now
        info = await schedule.describe()
        found = await fired()
        handles = [client.get_handle(run_id) for run_id in sorted(found)]
        results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), timeout=30)
        assert results == [chain_result(7, 1)] * len(found)
        runs = {r.run_id: r for r in await client.list_runs(workflow="chain")}
        rows = await executions.rows()
    survivors = [w for w in workers if w is not victim]
    assert all(w.alive() for w in survivors), [w.describe() for w in survivors]
    assert trouble(workers) == []
    expected = [start + k * EVERY for k in range(FIRES)]
    return Scenario(expected, found, info, runs, rows, victim, survivors, killed_at, orphans)


async def _at_least(fired: Any, n: int) -> bool:
    return len(await fired()) >= n


def check_runs(sc: Scenario) -> Counter[str]:
    """Every run ran its step once, save where the dead worker may have run it without its
    checkpoint committing (then a survivor ran it again after the takeover); the runs it held
    were finished by a survivor. Returns the executions per run."""
    assert all(r.status is RunStatus.SUCCEEDED for r in sc.runs.values())
    per_run = Counter(r.run_id for r in sc.rows)
    assert set(per_run) == set(sc.found)
    again = {run for run, n in per_run.items() if n > 1}
    assert all(any(r.worker_id == sc.victim.name for r in sc.rows if r.run_id == run) for run in again), again
    assert sc.orphans
    for run in sc.orphans:
        assert {r.worker_id for r in sc.rows if r.run_id == run} - {sc.victim.name}, run
    # After the kill the fires go on from the survivors alone.
    late = {run for run, at in sc.found.items() if at > sc.killed_at + LEASE}
    assert late and all(r.worker_id != sc.victim.name for r in sc.rows if r.run_id in late)
    return per_run


def report(sc: Scenario, overlap: str, per_run: Counter[str]) -> None:
    lag = sorted(min(r.started for r in sc.rows if r.run_id == run) - at for run, at in sc.found.items())
    print(
        f"\n{overlap}: {FIRES} fires every {EVERY}s on 3 workers, {sc.victim.name} killed after "
        f"{sum(at < sc.killed_at for at in sc.found.values())} runs: "
        f"{sc.info.started} started, {sc.info.skipped} skipped; lag fire->step p50 "
        f"{lag[len(lag) // 2] * 1000:.0f} ms, max {lag[-1] * 1000:.0f} ms; {len(sc.orphans)} runs held by it "
        f"finished elsewhere; {sum(n - 1 for n in per_run.values())} steps ran again"
    )


async def test_allow_all_every_fire_starts_one_run_across_a_kill(pg_url: str, procs: Procs) -> None:
    # allow_all: no fire waits for a run to end, so not even the dead worker's runs held up
    # by the lease hold a fire back: every one starts, the kill included.
    sc = await fire_and_kill(pg_url, procs, "allow_all", step_ms=400)
    # Every fire instant started exactly one run, under the id made from it; none more.
    assert sorted(sc.found.values()) == sc.expected
    assert sc.found == {fire_run_id("tick", at): at for at in sc.expected}
    # Each fire was decided once: counted once as started, never skipped nor missed.
    assert (sc.info.started, sc.info.skipped, sc.info.missed) == (FIRES, 0, 0), sc.info
    assert [a.outcome for a in sc.info.recent] == ["started"] * len(sc.info.recent)
    report(sc, "allow_all", check_runs(sc))


async def test_skip_fires_are_skipped_only_while_a_run_goes_the_dead_workers_until_takeover(
    pg_url: str, procs: Procs
) -> None:
    # skip (the default): a fire is skipped while the schedule's last run still goes. The run
    # the dead worker held goes on until a survivor takes it over after the lease, so the
    # fires in between are skipped: that, and nothing else, is what the kill may cost.
    sc = await fire_and_kill(pg_url, procs, "skip", step_ms=100)
    assert sc.info.missed == 0 and sc.info.started + sc.info.skipped == FIRES, sc.info
    assert sc.info.started == len(sc.found)
    assert set(sc.found.values()) <= set(sc.expected)
    assert sc.found == {fire_run_id("tick", at): sc.found[fire_run_id("tick", at)] for at in sc.found.values()}
    skipped = sorted(set(sc.expected) - set(sc.found.values()))
    assert len(skipped) == sc.info.skipped
    going = [(at, sc.runs[run].ended_at) for run, at in sc.found.items()]
    for at in skipped:  # each skip: a run started for an earlier fire had not ended by then
        assert any(fired < at <= ended for fired, ended in going), (at, going)
    # The lease (longer than the period) kept the held run going past at least one fire.
    held = [(sc.found[run], sc.runs[run].ended_at) for run in sc.orphans]
    assert any(fired < at <= ended for at in skipped for fired, ended in held), (skipped, held)
    report(sc, "skip", check_runs(sc))
