"""`wayline runs ...`: listing, showing and reading the history of runs, and every way
opening the database can fail."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from .conftest import Cli


def test_list_shows_every_run_newest_first(cli: Cli) -> None:
    res = cli("runs", "list")
    assert res.code == 0, res.err
    lines = res.out.splitlines()
    assert lines[0].split()[:3] == ["RUN", "ID", "WORKFLOW"]
    rows = [line.split()[:3] for line in lines[1:]]
    assert rows == [
        ["waiting", "approval@2", "WAITING"],
        ["declined", "declined@1", "FAILED"],
        ["paid", "order@1", "SUCCEEDED"],
    ]
    assert "waiting for signal 'verdict'" in lines[1]
    assert "ValueError: card declined for 99.0" in lines[2]
    assert res.err == ""


def test_list_filters_by_status_workflow_and_time(cli: Cli) -> None:
    failed = cli("runs", "list", "--status", "failed,cancelled", "--json")
    assert failed.code == 0, failed.err
    assert [r["run_id"] for r in failed.json()] == ["declined"]
    assert failed.json()[0]["error"] == "ValueError"
    assert [r["run_id"] for r in cli("runs", "list", "--workflow", "approval", "--json").json()] == ["waiting"]
    assert len(cli("runs", "list", "--since", "1h", "--json").json()) == 3
    assert cli("runs", "list", "--since", "2999-01-01T00:00:00Z", "--json").json() == []


def test_list_limit_keeps_the_most_recent_and_says_so(cli: Cli) -> None:
    res = cli("runs", "list", "--limit", "1")
    assert res.code == 0
    assert [line.split()[0] for line in res.out.splitlines()[1:]] == ["waiting"]
    assert "the 1 most recent matching runs; more match" in res.err


def test_list_rejects_bad_filters_as_usage_errors(cli: Cli) -> None:
    res = cli("runs", "list", "--status", "DONE")
    assert res.code == 2
    assert "--status 'DONE' is not a run status" in res.err and "SUCCEEDED" in res.err
    res = cli("runs", "list", "--since", "yesterday")
    assert res.code == 2
    assert "--since 'yesterday' is neither a duration" in res.err
    res = cli("runs", "list", "--limit", "0")
    assert res.code == 2
    assert "--limit must be at least 1" in res.err


def test_show_a_waiting_run(cli: Cli) -> None:
    res = cli("runs", "show", "waiting")
    assert res.code == 0, res.err
    fields = {line[:12].strip(): line[12:].strip() for line in res.out.splitlines()}
    assert fields["status"] == "WAITING"
    assert fields["workflow"] == "approval (version 2)"
    assert fields["waiting for"] == "signal 'verdict'"
    assert fields["vars"] == '{"doc":"contract-7"}'
    assert fields["ended"] == "-"


def test_show_json_of_a_failed_and_a_finished_run(cli: Cli) -> None:
    failed = cli("runs", "show", "declined", "--json").json()
    assert failed["status"] == "FAILED"
    assert (failed["error"], failed["cause"]) == ("ValueError", "card declined for 99.0")
    assert failed["ended_at"].endswith("Z")
    paid = cli("--json", "runs", "show", "paid").json()  # common options go before the command too
    assert paid["output"] == {"charged": 12.5}
    assert paid["input"] == 12.5
    assert paid["steps"] == 1


def test_history_one_event_per_line_and_as_a_json_list(cli: Cli) -> None:
    res = cli("runs", "history", "paid")
    assert res.code == 0, res.err
    kinds = [line.split()[1] for line in res.out.splitlines()]
    assert kinds == ["RunStarted", "StepStarted", "StepSucceeded", "RunSucceeded"]
    assert 'result={"charged":12.5}' in res.out
    events = cli("runs", "history", "declined", "--json").json()
    assert [e["type"] for e in events] == ["RunStarted", "StepStarted", "StepFailed", "RunFailed"]
    assert events[2]["cause"] == "card declined for 99.0" and events[2]["final"] is True


def test_unknown_run_id_is_one_line_and_exit_1(cli: Cli) -> None:
    for args in (("runs", "show", "nope"), ("runs", "history", "nope"), ("runs", "wait", "nope")):
        res = cli(*args)
        assert res.code == 1, args
        assert res.err.splitlines() == [
            f"wayline: error: no run with id 'nope' in {cli.db!r}; list the runs with `wayline runs list`"
        ]
        assert res.out == ""


def test_wait_reports_how_a_finished_run_ended(cli: Cli) -> None:
    ok = cli("runs", "wait", "paid")
    assert ok.code == 0 and '"charged": 12.5' in ok.out
    failed = cli("runs", "wait", "declined", "--json")
    assert failed.code == 1 and failed.json()["status"] == "FAILED"
    waiting = cli("runs", "wait", "waiting", "--timeout", "0.3")
    assert waiting.code == 1
    assert "run 'waiting' is still WAITING after 0.3s" in waiting.err


def test_missing_database_is_not_created(cli: Cli, tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here.db"
    res = Cli(str(missing), tmp_path)("runs", "list")
    assert res.code == 1
    assert f"database {str(missing)!r} does not exist" in res.err
    assert not missing.exists()
    # The default is ./wayline.db in the current directory: not created either.
    res = cli("runs", "list", db=False, WAYLINE_DB="")
    assert res.code == 1 and "database 'wayline.db' does not exist" in res.err
    assert not (tmp_path / "wayline.db").exists()


def test_database_comes_from_wayline_db_when_not_given(cli: Cli) -> None:
    res = cli("runs", "show", "paid", "--json", db=False, WAYLINE_DB=cli.db)
    assert res.code == 0 and res.json()["status"] == "SUCCEEDED"


def test_corrupt_database_and_directory(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not sqlite at all" * 100)
    res = Cli(str(bad), tmp_path)("runs", "list")
    assert res.code == 1
    assert "is not a usable wayline database" in res.err
    assert "Traceback" not in res.err and len(res.err.splitlines()) == 1
    res = Cli(str(tmp_path), tmp_path)("runs", "list")
    assert res.code == 1 and "is a directory, not a database file" in res.err


def test_locked_database(cli: Cli) -> None:
    holder = sqlite3.connect(cli.db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's write transaction
    try:
        res = cli("signal", "waiting", "verdict", '"yes"', "--lock-timeout", "0.2")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert res.code == 1
    assert res.err.startswith(f"wayline: error: database {cli.db!r} is locked by another process")
    assert len(res.err.splitlines()) == 1


def test_usage_errors_exit_2_with_one_line(cli: Cli) -> None:
    res = cli("runs", "show")
    assert res.code == 2
    assert res.err.splitlines() == [
        "wayline runs show: error: the following arguments are required: RUN_ID (see `wayline runs show --help`)"
    ]
    res = cli("runs")
    assert res.code == 2 and "choose a command" in res.err
    assert cli("frobnicate").code == 2
