"""`wayline asl validate`, `asl run` and `redrive`: state machines from files, run durably
on the database by the CLI process, with Task resources imported from a module."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import signal
import subprocess
from pathlib import Path

import pytest

from _otlp_collector import running_collector
from wayline import open_runtime

from .conftest import WAYLINE, Cli

MACHINE = {
    "Comment": "price an order",
    "StartAt": "Price",
    "States": {
        "Price": {
            "Type": "Task",
            "Resource": "arn:aws:lambda:eu-west-1:1:function:price",
            "ResultPath": "$.priced",
            "Next": "Check",
        },
        "Check": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.priced.total", "NumericGreaterThan": 100, "Next": "TooDear"}],
            "Default": "Done",
        },
        "TooDear": {"Type": "Fail", "Error": "Order.TooExpensive", "Cause": "total over 100"},
        "Done": {"Type": "Succeed"},
    },
}

# The resource fails while a file named "broken" exists in the working directory, so a test
# can fail a run, fix the cause and redrive it, across processes.
TASKS = """
import os

async def price(payload):
    if os.path.exists("broken"):
        raise RuntimeError("pricing service down")
    return {"total": payload["qty"] * 10}

RESOURCES = {"arn:aws:lambda:eu-west-1:1:function:price": price}
NOT_A_MAPPING = 42

def blocking_price(payload):
    return {"total": 1}

SYNC = {"arn:aws:lambda:eu-west-1:1:function:price": blocking_price}
"""


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "orders.json").write_text(json.dumps(MACHINE))
    (tmp_path / "tasks.py").write_text(TASKS)
    return tmp_path


@pytest.fixture
def fresh(files: Path) -> Cli:
    """A CLI on a database that does not exist yet: `asl run` creates it."""
    return Cli(str(files / "asl.db"), files)


def test_validate_a_valid_definition(fresh: Cli) -> None:
    res = fresh("asl", "validate", "orders.json", db=False)
    assert res.code == 0, res.err
    assert res.out.strip() == "orders.json: valid (4 states, JSONPath)"
    assert fresh("asl", "validate", "orders.json", "--json", db=False).json() == {
        "file": "orders.json",
        "valid": True,
        "problems": [],
        "states": 4,
    }


def test_validate_lists_every_problem_with_its_path(fresh: Cli, files: Path) -> None:
    broken = {"StartAt": "A", "States": {"A": {"Type": "Task", "Next": "B"}, "C": {"Type": "Wait"}}}
    (files / "broken.json").write_text(json.dumps(broken))
    res = fresh("asl", "validate", "broken.json", db=False)
    assert res.code == 1
    lines = res.out.splitlines()
    assert lines[0].startswith("broken.json: invalid, ")
    assert "  /States/A/Resource: required, must be a string" in lines
    assert '  /States/A/Next: no state named "B"' in lines
    doc = fresh("asl", "validate", "broken.json", "--json", db=False).json()
    assert doc["valid"] is False and len(doc["problems"]) == len(lines) - 1


def test_validate_files_that_are_missing_or_not_json(fresh: Cli, files: Path) -> None:
    res = fresh("asl", "validate", "nowhere.json", db=False)
    assert res.code == 1 and res.err.strip() == "wayline: error: definition: file 'nowhere.json' does not exist"
    (files / "half.json").write_text('{"StartAt": "A", ')
    res = fresh("asl", "validate", "half.json", db=False)
    assert res.code == 1 and "/: the definition is not valid JSON" in res.out


def test_run_prints_the_output_and_creates_the_database(fresh: Cli) -> None:
    res = fresh(
        "asl", "run", "orders.json", "--input", '{"qty": 3}', "--resources", "tasks:RESOURCES", "--run-id", "o1"
    )
    assert res.code == 0, res.err
    assert json.loads(res.out) == {"qty": 3, "priced": {"total": 30}}
    assert res.err == "run o1 succeeded\n"  # stderr is no TTY here: no progress drawn
    show = fresh("runs", "show", "o1", "--json").json()
    assert (show["workflow"], show["status"]) == ("orders", "SUCCEEDED")  # named after the file
    history = fresh("runs", "history", "o1").out
    assert "TaskSucceeded" in history and "ExecutionSucceeded" in history
    # The same run id again reports that run; nothing runs twice.
    again = fresh(
        "asl",
        "run",
        "orders.json",
        "--input",
        '{"qty": 5}',
        "--resources",
        "tasks:RESOURCES",
        "--run-id",
        "o1",
        "--json",
    )
    assert again.code == 0 and again.json()["output"] == {"qty": 3, "priced": {"total": 30}}


def test_run_that_fails_reports_error_and_cause(fresh: Cli) -> None:
    res = fresh(
        "asl",
        "run",
        "orders.json",
        "--input",
        '{"qty": 30}',
        "--resources",
        "tasks:RESOURCES",
        "--run-id",
        "dear",
        "--name",
        "pricing",
    )
    assert res.code == 1
    assert res.out == ""
    assert res.err.splitlines() == ["wayline: run 'dear' failed: Order.TooExpensive: total over 100"]
    doc = fresh(
        "asl", "run", "orders.json", "--resources", "tasks:RESOURCES", "--run-id", "dear", "--name", "pricing", "--json"
    ).json()
    assert (doc["status"], doc["error"], doc["cause"]) == ("FAILED", "Order.TooExpensive", "total over 100")


def test_run_argument_errors(fresh: Cli, files: Path) -> None:
    res = fresh("asl", "run", "orders.json", "--input", "{'qty': 3}")
    assert res.code == 2
    assert res.err.startswith("wayline: error: --input is not valid JSON: Expecting property name")
    res = fresh("asl", "run", "orders.json", "--resources", "tasks")
    assert res.code == 2 and "must be MODULE:MAPPING" in res.err
    res = fresh("asl", "run", "orders.json", "--resources", "no_such_module:X")
    assert res.code == 1 and "cannot import module 'no_such_module'" in res.err
    res = fresh("asl", "run", "orders.json", "--resources", "tasks:MISSING")
    assert res.code == 1 and "module 'tasks' has no attribute 'MISSING'" in res.err
    res = fresh("asl", "run", "orders.json", "--resources", "tasks:NOT_A_MAPPING")
    assert res.code == 1 and "is a int, not a mapping" in res.err
    res = fresh("asl", "run", "orders.json", "--input", '{"qty": 3}')
    assert res.code == 1 and "no resource is bound to 'arn:aws:lambda:eu-west-1:1:function:price'" in res.err
    assert "--resources MODULE:MAPPING" in res.err
    res = fresh("asl", "run", "orders.json", "--input", '{"qty": 3}', "--resources", "tasks:SYNC")
    assert res.code == 1 and "blocking_price is a plain function" in res.err and "async def" in res.err
    (files / "bad.json").write_text('{"StartAt": "Nope", "States": {}}')
    res = fresh("asl", "run", "bad.json")
    assert res.code == 1 and res.err.startswith("wayline: error: invalid state machine definition")
    for path in (files / "asl.db", files / "asl.db-wal"):
        assert not path.exists()  # nothing was run, so no database was made


def test_run_refuses_a_database_another_worker_owns(fresh: Cli) -> None:
    async def scenario() -> subprocess.CompletedProcess[str]:
        async with open_runtime(fresh.db):
            return await asyncio.to_thread(
                subprocess.run,
                [str(WAYLINE), "asl", "run", "orders.json", "--resources", "tasks:RESOURCES", "--db", fresh.db],
                cwd=fresh.cwd,
                capture_output=True,
                text=True,
                timeout=60,
            )

    proc = asyncio.run(scenario())
    assert proc.returncode == 1
    assert f"database {fresh.db!r} is run by another process" in proc.stderr


def test_redrive_resumes_from_the_failed_state(fresh: Cli, files: Path) -> None:
    (files / "broken").touch()
    res = fresh("asl", "run", "orders.json", "--input", '{"qty": 2}', "--resources", "tasks:RESOURCES", "--run-id", "r")
    assert res.code == 1 and "RuntimeError: pricing service down" in res.err
    (files / "broken").unlink()
    res = fresh("redrive", "r", "--definition", "orders.json", "--resources", "tasks:RESOURCES")
    assert res.code == 0, res.err
    assert json.loads(res.out) == {"qty": 2, "priced": {"total": 20}}
    events = fresh("runs", "history", "r", "--json").json()
    names = [e.get("name", e["type"]) for e in events]
    assert names.count("ExecutionStarted") == 1  # resumed, not started over
    assert "ExecutionRedriven" in names
    res = fresh("redrive", "r", "--definition", "orders.json")
    assert res.code == 1
    assert "cannot redrive run 'r': only FAILED runs can be redriven, and it is SUCCEEDED" in res.err


def test_redrive_errors(cli: Cli, files: Path) -> None:
    (cli.cwd / "orders.json").write_text(json.dumps(MACHINE))
    res = cli("redrive", "declined", "--definition", "orders.json")  # a code workflow's failed run
    assert res.code == 1 and "it is a run of code workflow 'declined'" in res.err
    res = cli("redrive", "nope", "--definition", "orders.json")
    assert res.code == 1 and "no run with id 'nope'" in res.err
    res = cli("redrive", "declined")
    assert res.code == 2 and "--definition" in res.err


def test_progress_is_drawn_on_a_terminal(fresh: Cli, files: Path) -> None:
    slow = {"StartAt": "Pause", "States": {"Pause": {"Type": "Wait", "Seconds": 1, "End": True}}}
    (files / "slow.json").write_text(json.dumps(slow))
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run(
            [str(WAYLINE), "asl", "run", "slow.json", "--run-id", "s", "--db", fresh.db],
            cwd=files,
            stdout=subprocess.PIPE,
            stderr=follower,
            text=True,
            timeout=60,
        )
        os.close(follower)
        drawn = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal's other end is closed and drained
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(leader)
    assert proc.returncode == 0
    assert json.loads(proc.stdout) == {}
    assert b"\r\x1b[K" in drawn and b"run s, " in drawn and b"state Pause" in drawn


# A resource that tells the test, through a pipe the test passes down (WAYLINE_TEST_FD), what
# it got: the test blocks on the pipe instead of polling files or the database. Without the
# variable (a later run, or a retry after a resume) it tells nobody.
TELL = """
import os


async def tell(payload):
    fd = os.environ.pop("WAYLINE_TEST_FD", None)
    if fd is not None:
        os.write(int(fd), (payload.get("token") or "entered").encode() + b"\\n")
        os.close(int(fd))
    return payload

RESOURCES = {"tell": tell, "tell.waitForTaskToken": tell}
"""


def _told(read_end: int, proc: subprocess.Popen[str]) -> str:
    """The line the resource wrote to the pipe: waits for it (or for the command to die)."""
    with os.fdopen(read_end, "rb") as pipe:
        line = pipe.readline().decode().strip()
    if not line:
        pytest.fail(f"the command exited ({proc.wait()}) before its resource ran: {proc.communicate()[1]}")
    return line


def _popen_telling(argv: list[str], cwd: Path) -> tuple[subprocess.Popen[str], int]:
    read_end, write_end = os.pipe()
    env = {**os.environ, "WAYLINE_TEST_FD": str(write_end)}
    proc = subprocess.Popen(
        argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, pass_fds=(write_end,)
    )
    os.close(write_end)  # the command holds the only writer: its exit ends the test's read
    return proc, read_end


def test_interrupted_run_is_saved_and_resumed_by_its_run_id(fresh: Cli, files: Path) -> None:
    pause = {
        "StartAt": "Mark",
        "States": {
            "Mark": {"Type": "Task", "Resource": "tell", "Next": "Pause"},
            "Pause": {"Type": "Wait", "Seconds": 1, "Next": "Done"},
            "Done": {"Type": "Pass", "Result": {"ok": 1}, "End": True},
        },
    }
    (files / "pause.json").write_text(json.dumps(pause))
    (files / "telling.py").write_text(TELL)
    argv = [str(WAYLINE), "asl", "run", "pause.json", "--run-id", "p1", "--resources", "telling:RESOURCES"]
    proc, told = _popen_telling([*argv, "--db", fresh.db], files)
    assert _told(told, proc) == "entered"  # the run exists and is under way
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert out == ""
    assert f"`wayline asl run pause.json --run-id p1 --db {fresh.db}` resumes it" in err
    assert fresh("runs", "show", "p1", "--json").json()["status"] == "RUNNING"
    res = fresh(*argv[1:])
    assert res.code == 0, res.err
    assert json.loads(res.out) == {"ok": 1}
    names = [e.get("name", e["type"]) for e in fresh("runs", "history", "p1", "--json").json()]
    assert names.count("ExecutionStarted") == 1 and "RunResumed" in names  # resumed, not restarted


def test_wait_for_task_token_answered_by_another_wayline_process(fresh: Cli, files: Path) -> None:
    # `asl run` owns the database and polls its inbox; `callback complete`, a client in another
    # process, commits the answer there: the Step Functions callback pattern from a shell.
    ask = {
        "StartAt": "Ask",
        "States": {
            "Ask": {
                "Type": "Task",
                "Resource": "tell.waitForTaskToken",
                "Parameters": {"token.$": "$$.Task.Token", "doc.$": "$.doc"},
                "ResultPath": "$.answer",
                "End": True,
            }
        },
    }
    (files / "ask.json").write_text(json.dumps(ask))
    (files / "telling.py").write_text(TELL)
    argv = [str(WAYLINE), "asl", "run", "ask.json", "--input", '{"doc": "lease"}', "--resources", "telling:RESOURCES"]
    proc, told = _popen_telling([*argv, "--db", fresh.db], files)
    token = _told(told, proc)
    res = fresh("callback", "complete", token, '{"approved": true}')
    assert res.code == 0, res.err
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert json.loads(out) == {"doc": "lease", "answer": {"approved": True}}


def test_run_exports_its_trace_to_an_otlp_endpoint(fresh: Cli) -> None:
    with running_collector() as (got, url):
        res = fresh(
            "asl", "run", "orders.json", "--input", '{"qty": 2}', "--resources", "tasks:RESOURCES",
            "--run-id", "traced", "--otlp-endpoint", url,
        )  # fmt: skip
        assert res.code == 0, res.err
        spans = got.spans()
    (segment,) = [s for s in spans if s.name == "run orders"]
    attrs = {a.key: a.value.string_value for a in segment.attributes}
    assert attrs["wayline.run_id"] == "traced"
    assert got.service_names() == {"wayline-cli"}
