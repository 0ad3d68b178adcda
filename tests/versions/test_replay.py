"""``wayline replay``: stored journals replayed against new code, nothing run, divergences named."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

from wayline import RunFailed, open_runtime
from wayline.persistence import RunStatus
from wayline.testing import VirtualClock

WAYLINE = Path(sys.executable).with_name("wayline")

OLD = """
from wayline import RunContext, activity, workflow

RAN = []

@activity(name="reserve")
async def reserve(order: str) -> str:
    RAN.append("reserve")
    return "reserved " + order

@activity(name="charge")
async def charge(order: str) -> str:
    RAN.append("charge")
    return "charged " + order

@workflow(name="order")
async def order(ctx: RunContext, order: str) -> list:
    done = [await ctx.run(reserve, order), await ctx.run(charge, order)]
    await ctx.wait_signal("ship")
    return done
"""

# The same workflow with its two steps in the other order: runs past them cannot replay.
REORDERED = OLD.replace(
    "done = [await ctx.run(reserve, order), await ctx.run(charge, order)]",
    "done = [await ctx.run(charge, order), await ctx.run(reserve, order)]",
)

# A compatible change: a step after the last one any run has journaled.
EXTENDED = OLD.replace(
    '    await ctx.wait_signal("ship")\n    return done',
    '    await ctx.wait_signal("ship")\n    done.append(await ctx.run(charge, "again"))\n    return done',
)


def _module(tmp_path: Path, name: str, source: str) -> None:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))


async def _populate(tmp_path: Path) -> Path:
    """Two runs of the old code waiting for "ship" after both steps, and one that finished."""
    sys.path.insert(0, str(tmp_path))
    try:
        _module(tmp_path, "old_flows", OLD)
        import old_flows  # type: ignore[import-not-found]

        db = tmp_path / "orders.db"
        async with open_runtime(db, workflows=[old_flows.order], clock=VirtualClock()) as rt:
            for run_id in ("o-1", "o-2", "o-3"):
                await rt.start(old_flows.order, run_id, run_id=run_id)
            await rt.signal("o-3", "ship")
            with anyio.fail_after(30):
                await rt.get_handle("o-3").result()
            await rt.clock.sleep(1)  # virtual: returns once the other two have parked
            assert {(await rt.describe(r)).status for r in ("o-1", "o-2")} == {RunStatus.WAITING}
        return db
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("old_flows", None)


def _replay(tmp_path: Path, db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [str(WAYLINE), "replay", "--db", str(db), *args]
    return subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, timeout=60)


@pytest.mark.anyio
async def test_replay_reports_each_run_a_reordered_step_would_break(tmp_path: Path) -> None:
    db = await _populate(tmp_path)
    _module(tmp_path, "reordered", REORDERED)
    _module(tmp_path, "extended", EXTENDED)

    bad = _replay(tmp_path, db, "--workflow", "reordered:order")
    assert bad.returncode == 1, bad.stderr
    lines = bad.stdout.splitlines()
    assert lines[0].split() == ["RUN_ID", "VERSION", "STATUS", "VERDICT", "POSITIONS", "DETAIL"]
    for run_id in ("o-1", "o-2"):
        row = next(line for line in lines if line.startswith(run_id))
        assert "nondeterministic" in row and "step #0 was 'reserve'" in row and "asks for 'charge'" in row
    assert "o-3" not in bad.stdout  # finished: a deploy does not replay it
    assert lines[-1].endswith("2 runs of version '1' of 'order' replayed against this code: 2 nondeterministic")

    doc = json.loads(_replay(tmp_path, db, "--workflow", "reordered:order", "--all", "--json").stdout)
    assert doc["ok"] is False
    assert {r["run_id"]: r["verdict"] for r in doc["runs"]} == {
        "o-1": "nondeterministic",
        "o-2": "nondeterministic",
        "o-3": "nondeterministic",
    }

    good = _replay(tmp_path, db, "--workflow", "extended:order", "--all")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "3 runs of version '1' of 'order' replayed against this code: 3 ok" in good.stdout

    only = json.loads(_replay(tmp_path, db, "--workflow", "reordered:order", "--run-id", "o-2", "--json").stdout)
    assert [r["run_id"] for r in only["runs"]] == ["o-2"]


@pytest.mark.anyio
async def test_the_runtime_fails_the_run_exactly_as_replay_predicted(tmp_path: Path) -> None:
    db = await _populate(tmp_path)
    _module(tmp_path, "reordered", REORDERED)
    sys.path.insert(0, str(tmp_path))
    try:
        import reordered  # type: ignore[import-not-found]

        async with open_runtime(db, workflows=[reordered.order]) as rt:
            with anyio.fail_after(30), pytest.raises(RunFailed) as failed:
                await rt.get_handle("o-1").result()
        assert failed.value.error == "NonDeterminismError"
        assert "step #0 was 'reserve'" in (failed.value.cause or "")
        assert reordered.RAN == []  # the replay tool ran nothing, and neither did this replay
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("reordered", None)


def test_replay_of_a_state_machine_says_there_is_nothing_to_check(tmp_path: Path) -> None:
    (tmp_path / "machines.py").write_text(
        "from wayline import StateMachine\n"
        "M = StateMachine({'StartAt': 'P', 'States': {'P': {'Type': 'Pass', 'End': True}}}, name='m')\n"
    )
    (tmp_path / "empty.db").touch()
    done = _replay(tmp_path, tmp_path / "empty.db", "--workflow", "machines:M")
    assert done.returncode == 1
    assert "state machine" in done.stderr and "nothing to check" in done.stderr
