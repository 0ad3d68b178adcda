"""`wayline start MODULE:WORKFLOW`: code workflows started from a shell, committed for a
worker or (with --wait) run by the command itself, on a real database in real processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import Cli

# The activity appends one line to greeted.txt per execution, so the test counts executions
# across processes. `fails` fails its run; `plain` is not a workflow.
FLOWS = """
from pathlib import Path

from wayline import RunContext, activity, workflow


@activity(name="greet")
async def greet(name: str) -> str:
    with Path("greeted.txt").open("a") as f:
        f.write(name + "\\n")
    return f"hello {name}"


@workflow(name="greeting")
async def greeting(ctx: RunContext, name: str) -> str:
    return await ctx.run(greet, name)


@workflow(name="tick")
async def tick(ctx: RunContext) -> int:
    return 1


@workflow(name="fails")
async def fails(ctx: RunContext, why: str) -> None:
    raise ValueError(why)


async def plain(name: str) -> str:
    return name
"""

WORKER = """
import asyncio
import sys

import flows
from wayline import open_runtime


async def main(db, run_id):
    async with open_runtime(db, workflows=[flows.greeting, flows.tick]) as rt:
        print(await rt.get_handle(run_id).result())


asyncio.run(main(*sys.argv[1:]))
"""


@pytest.fixture
def here(tmp_path: Path) -> Cli:
    (tmp_path / "flows.py").write_text(FLOWS)
    (tmp_path / "worker.py").write_text(WORKER)
    return Cli(str(tmp_path / "start.db"), tmp_path)


def _greeted(cli: Cli) -> list[str]:
    path = cli.cwd / "greeted.txt"
    return path.read_text().splitlines() if path.exists() else []


def test_start_commits_the_run_for_a_worker_and_runs_none_of_it(here: Cli) -> None:
    res = here("start", "flows:greeting", "--input", '"Ada"', "--run-id", "g-1")
    assert res.code == 0, res.err
    assert res.out.strip() == "g-1"
    assert "nothing of it ran here" in res.err and "--run-id g-1 --input '\"Ada\"'" in res.err
    assert _greeted(here) == []
    shown = here("runs", "show", "g-1", "--json").json()
    assert (shown["workflow"], shown["status"], shown["steps"], shown["input"]) == ("greeting", "RUNNING", 0, "Ada")

    # A worker process that registers the workflow: opening the database resumes the run.
    worker = subprocess.run(
        [sys.executable, "worker.py", here.db, "g-1"], cwd=here.cwd, capture_output=True, text=True, timeout=60
    )
    assert worker.returncode == 0, worker.stderr
    assert worker.stdout.strip() == "hello Ada"
    assert _greeted(here) == ["Ada"]
    again = here("start", "flows:greeting", "--input", '"Ada"', "--run-id", "g-1", "--json")
    assert again.code == 0, again.err
    assert again.json() == {
        "run_id": "g-1",
        "workflow": "greeting",
        "version": "1",
        "status": "SUCCEEDED",
        "created": False,
    }


def test_start_wait_runs_it_here_and_prints_the_output(here: Cli) -> None:
    res = here("start", "flows:greeting", "--input", '"Bo"', "--wait")
    assert res.code == 0, res.err
    assert json.loads(res.out) == "hello Bo"
    assert "succeeded" in res.err
    assert _greeted(here) == ["Bo"]
    # A committed run is taken up by --wait with its id, and runs once.
    assert here("start", "flows:tick", "--run-id", "t-1").code == 0
    res = here("start", "flows:tick", "--run-id", "t-1", "--wait", "--json")
    assert res.code == 0, res.err
    assert (res.json()["status"], res.json()["output"]) == ("SUCCEEDED", 1)


def test_start_wait_of_a_failing_workflow_exits_1_with_the_error(here: Cli) -> None:
    res = here("start", "flows:fails", "--input", '"out of stock"', "--run-id", "f-1", "--wait")
    assert res.code == 1
    assert res.out == ""
    assert "run 'f-1' failed: ValueError: out of stock" in res.err


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("flows",), 2, "start 'flows' must be MODULE:WORKFLOW, e.g. start my_app.flows:order"),
        (("nowhere:greeting", "--input", "1"), 1, "start: cannot import module 'nowhere': ModuleNotFoundError"),
        (("flows:missing",), 1, "start: module 'flows' has no attribute 'missing'"),
        (("flows:plain",), 1, "start: flows:plain is a function, not an @workflow or a StateMachine (decorate it"),
        (("flows:tick", "--input", "1"), 2, "workflow 'tick' takes no input (its function is (ctx))"),
        (("flows:greeting",), 2, "workflow 'greeting' takes an input; give it with --input JSON"),
        (("flows:greeting", "--input", "Ada"), 2, "--input is not valid JSON"),
    ],
)
def test_start_errors_name_what_is_wrong(here: Cli, args: tuple[str, ...], code: int, message: str) -> None:
    res = here("start", *args)
    assert res.code == code, res.err
    assert message in res.err and len(res.err.splitlines()) == 1
    assert not Path(here.db).exists() or code == 1  # a refused command line creates nothing


def test_start_refuses_a_run_id_of_another_workflow(here: Cli) -> None:
    assert here("start", "flows:tick", "--run-id", "x").code == 0
    res = here("start", "flows:greeting", "--input", '"Cy"', "--run-id", "x")
    assert res.code == 1
    assert "run 'x' already exists as workflow 'tick', not 'greeting'" in res.err


WAITING_WORKER = """
import asyncio
import sys

import flows
from wayline import RunNotFoundError, open_runtime


async def main(db, run_id):
    async with open_runtime(db, workflows=[flows.greeting], inbox_poll_interval=0.02) as rt:
        print("ready", flush=True)
        while True:
            try:
                print(await rt.get_handle(run_id).result(), flush=True)
                return
            except RunNotFoundError:
                await asyncio.sleep(0.02)


asyncio.run(main(*sys.argv[1:]))
"""


def test_start_beside_a_running_worker_is_taken_by_it_at_once(here: Cli) -> None:
    """The command is a client: the worker holding the database runs the run (it does not
    wait for its next start), and nothing of it runs in the command."""
    (here.cwd / "waiting_worker.py").write_text(WAITING_WORKER)
    worker = subprocess.Popen(
        [sys.executable, "waiting_worker.py", here.db, "w-1"],
        cwd=here.cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "ready"
        res = here("start", "flows:greeting", "--input", '"Dee"', "--run-id", "w-1")
        assert res.code == 0, res.err
        out, err = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert out.strip() == "hello Dee", err
    assert _greeted(here) == ["Dee"]
