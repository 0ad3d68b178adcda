"""The command explains itself: every option described, the common options listed once, and
with --json every error is a JSON document on stdout (exit status as without it)."""

from __future__ import annotations

import argparse
import json
import re

import pytest

from wayline._cli._main import build_parser

from .conftest import Cli

COMMON = ("--db", "--json", "--log-level", "--log-format", "--otlp-endpoint", "--lock-timeout")


def _parsers(parser: argparse.ArgumentParser, path: str = "wayline") -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _parsers(sub, f"{path} {name}")
    return found


def test_every_option_and_argument_has_a_description() -> None:
    parsers = _parsers(build_parser())
    assert len(parsers) >= 17  # every command and group
    missing = [
        f"{path}: {action.option_strings or action.dest}"
        for path, parser in parsers
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction) and not action.help
    ]
    assert missing == []


def test_common_options_are_listed_once(cli: Cli) -> None:
    top = cli("--help", db=False)
    assert top.code == 0
    for option in COMMON:
        assert len(re.findall(rf"^\s+{option}\b", top.out, re.MULTILINE)) == 1, option
    # Every subcommand's help, as `wayline COMMAND --help` prints it (rendered in-process: the
    # same parser, without a process per command).
    for path, parser in _parsers(build_parser())[1:]:
        text = parser.format_help()
        listed = [o for o in COMMON if re.search(rf"^\s+{o}\b", text, re.MULTILINE)]
        assert listed == [] or (path == "wayline demo" and listed == ["--db"]), (path, listed)
        assert "`wayline --help`" in " ".join(text.split()), path
    # ... and still work after the command's name as before it.
    assert cli("runs", "list", "--json", "--lock-timeout", "2").code == 0


@pytest.mark.parametrize(
    ("args", "code", "kind", "message"),
    [
        (("runs", "show", "nope"), 1, "RunNotFoundError", "no run with id 'nope'"),
        (("signal", "paid", "verdict", '"x"'), 1, "RunAlreadyFinishedError", "it has already finished"),
        (("runs", "list", "--since", "yesterday"), 2, "UsageError", "--since 'yesterday' is neither a duration"),
        (("runs", "list", "--limit", "many"), 2, "UsageError", "argument --limit: invalid int value: 'many'"),
        (("runs",), 2, "UsageError", "choose a command after 'runs'"),
        (("start", "nowhere:wf"), 1, "CliError", "cannot import module 'nowhere'"),
    ],
)
def test_json_makes_errors_json_too(cli: Cli, args: tuple[str, ...], code: int, kind: str, message: str) -> None:
    res = cli(*args, "--json")
    assert res.code == code, res.err
    assert res.err == ""
    error = json.loads(res.out)["error"]
    assert (error["type"], error["exit_status"]) == (kind, code)
    assert message in error["message"]
    plain = cli(*args)  # without --json: the same error as one line on stderr
    assert plain.code == code and plain.out == "" and message in plain.err


def test_json_errors_carry_the_ids(cli: Cli) -> None:
    error = cli("cancel", "paid", "--json").json()["error"]
    assert error["type"] == "RunAlreadyFinishedError"
    assert (error["run_id"], error["status"]) == ("paid", "SUCCEEDED")
