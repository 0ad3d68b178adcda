"""``wayline``: the argument parser, logging setup, and turning errors into exit codes."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, NoReturn

from .. import __version__
from .._errors import WaylineError
from ..runtime import JsonLogFormatter, RunLogFilter
from ..runtime._logging import RUN_FIELDS
from . import _commands as cmd
from ._errors import FAILED, INTERRUPTED, USAGE, CliError, leaf_error, message_for

log = logging.getLogger("wayline.cli")

_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

_EPILOG = """\
The database is --db PATH (a file or a postgresql:// URL), else $WAYLINE_DB, else ./wayline.db.
Commands that read runs or send them messages open it as a client beside the worker that runs
them: what they send is committed to the run's inbox and the worker delivers it. `asl run` and `redrive` run a state
machine in this process and need the database to themselves.

JSON arguments may be given inline ('{"a": 1}'), as @FILE, or as @- for stdin.
Exit status: 0 done, 1 the operation failed (or the run did), 2 the command line is wrong.
"""


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (exit 2) instead of the usage block."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")
        sys.exit(USAGE)


def _add_common(parser: argparse.ArgumentParser, *, sub: bool) -> None:
    """Options every command takes, before or after its name. On subcommands they default
    to SUPPRESS so an option given before the command is not reset by the subparser."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if sub else value

    group = parser.add_argument_group("common options")
    group.add_argument(
        "--db",
        metavar="PATH",
        default=default(None),
        help="database file or postgresql://user@host/db URL (default: $WAYLINE_DB or wayline.db)",
    )
    group.add_argument("--json", action="store_true", default=default(False), help="print one JSON document on stdout")
    group.add_argument(
        "--log-level", type=str.upper, choices=_LEVELS, default=default("WARNING"), help="log level (default: WARNING)"
    )
    group.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=default("text"),
        help="log records on stderr as text or JSON lines",
    )
    group.add_argument(
        "--otlp-endpoint",
        metavar="URL",
        default=default(None),
        help="export traces and metrics over OTLP/HTTP to this collector (e.g. http://localhost:4318); "
        "without it, the standard OTEL_EXPORTER_OTLP_ENDPOINT variables turn export on",
    )
    group.add_argument(
        "--lock-timeout",
        type=float,
        metavar="SECONDS",
        default=default(5.0),
        help="how long to wait for a database locked by another process (default: 5)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="wayline",
        description="Inspect and steer wayline runs; validate and run Step Functions state machines.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common(parser, sub=False)
    parser.add_argument("--version", action="version", version=f"wayline {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def command(group: Any, name: str, help: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = group.add_parser(name, help=help, description=help)
        _add_common(p, sub=True)
        return p

    runs = commands.add_parser("runs", help="list runs, show one, print its history, wait for it")
    _add_common(runs, sub=True)
    run_cmds = runs.add_subparsers(dest="runs_command", metavar="COMMAND", parser_class=_Parser)
    p = command(run_cmds, "list", "list runs, the most recent first")
    p.add_argument("--status", metavar="S", help="only runs in status S (comma-separated: FAILED,CANCELLED)")
    p.add_argument("--workflow", metavar="W", help="only runs of workflow W")
    p.add_argument("--since", metavar="WHEN", help="only runs created since WHEN: 30m, 1h, 2d, or an ISO 8601 time")
    p.add_argument("--limit", type=int, default=100, metavar="N", help="at most N runs (default: 100)")
    p = command(run_cmds, "show", "a run's status, workflow, timestamps, vars, waits, output or error")
    p.add_argument("run_id", metavar="RUN_ID")
    p = command(run_cmds, "history", "a run's events, oldest first")
    p.add_argument("run_id", metavar="RUN_ID")
    p = command(run_cmds, "wait", "wait until a run ends, then show how (exit 1 unless it succeeded)")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="give up after SECONDS (exit 1)")

    p = command(commands, "signal", "send a signal to a run")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("name", metavar="NAME")
    p.add_argument("payload", metavar="JSON", nargs="?", default="null", help="the payload (default: null)")

    p = command(commands, "cancel", "cancel a run")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--reason", metavar="R")

    cb = commands.add_parser("callback", help="complete, fail or heartbeat a callback token")
    _add_common(cb, sub=True)
    cb_cmds = cb.add_subparsers(dest="callback_command", metavar="COMMAND", parser_class=_Parser)
    p = command(cb_cmds, "complete", "complete the callback with TOKEN, giving the waiting step its output")
    p.add_argument("token", metavar="TOKEN")
    p.add_argument("output", metavar="JSON")
    p = command(cb_cmds, "fail", "fail the callback with TOKEN")
    p.add_argument("token", metavar="TOKEN")
    p.add_argument("--error", required=True, metavar="E", help="the error name the run sees")
    p.add_argument("--cause", metavar="C", help="a readable cause")
    p = command(cb_cmds, "heartbeat", "report that the work behind TOKEN is still alive")
    p.add_argument("token", metavar="TOKEN")

    p = command(commands, "redrive", "restart a FAILED state machine run from the state that failed")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--definition", required=True, metavar="FILE", help="the run's state machine definition (ASL JSON)")
    p.add_argument(
        "--resources", metavar="MODULE:MAPPING", help="Task resources: a dict of name or ARN to async callable"
    )

    asl = commands.add_parser("asl", help="validate or run an Amazon States Language definition")
    _add_common(asl, sub=True)
    asl_cmds = asl.add_subparsers(dest="asl_command", metavar="COMMAND", parser_class=_Parser)
    p = command(asl_cmds, "validate", "check a definition; every problem is listed with its path")
    p.add_argument("file", metavar="FILE")
    p = command(asl_cmds, "run", "run a definition durably on the database and print its output")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--input", default="{}", metavar="JSON", help="the execution input (default: {})")
    p.add_argument(
        "--resources", metavar="MODULE:MAPPING", help="Task resources: a dict of name or ARN to async callable"
    )
    p.add_argument("--name", metavar="NAME", help="the state machine's name (default: the file name without .json)")
    p.add_argument("--run-id", metavar="ID", help="the run's id; an existing id resumes or reports that run")

    p = command(commands, "demo", "run the crash-and-resume demo (python -m wayline.demo)")
    p.add_argument("--keep", action="store_true", help="reuse the demo database instead of deleting it first")
    p.add_argument("--no-kill", action="store_true", help="run the workflow once, uninterrupted")
    return parser


class _TextFormatter(logging.Formatter):
    """``time LEVEL logger: message [run_id=... step=...]``."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = " ".join(f"{k}={record.__dict__[k]}" for k in RUN_FIELDS if record.__dict__.get(k) is not None)
        if not ids:
            return text
        head, sep, rest = text.partition("\n")  # after the message, before a traceback
        return f"{head} [{ids}]{sep}{rest}"


def _configure_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RunLogFilter())
    formatter = (
        JsonLogFormatter() if fmt == "json" else _TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)


def _dispatch(args: argparse.Namespace, opts: cmd.Options) -> Callable[[], Coroutine[Any, Any, int]] | None:
    """The coroutine function that carries out the parsed command, or None if it is incomplete."""
    match (
        args.command,
        getattr(args, "runs_command", None)
        or getattr(args, "callback_command", None)
        or getattr(args, "asl_command", None),
    ):
        case "runs", "list":
            return lambda: cmd.runs_list(opts, args.status, args.workflow, args.since, args.limit)
        case "runs", "show":
            return lambda: cmd.runs_show(opts, args.run_id)
        case "runs", "history":
            return lambda: cmd.runs_history(opts, args.run_id)
        case "runs", "wait":
            return lambda: cmd.runs_wait(opts, args.run_id, args.timeout)
        case "signal", _:
            return lambda: cmd.signal(opts, args.run_id, args.name, args.payload)
        case "cancel", _:
            return lambda: cmd.cancel(opts, args.run_id, args.reason)
        case "callback", "complete":
            return lambda: cmd.callback_complete(opts, args.token, args.output)
        case "callback", "fail":
            return lambda: cmd.callback_fail(opts, args.token, args.error, args.cause)
        case "callback", "heartbeat":
            return lambda: cmd.callback_heartbeat(opts, args.token)
        case "redrive", _:
            return lambda: cmd.redrive(opts, args.run_id, args.definition, args.resources)
        case "asl", "run":
            return lambda: cmd.asl_run(opts, args.file, args.input, args.resources, args.name, args.run_id)
    return None


def _run_demo(args: argparse.Namespace) -> int:
    from ..demo.__main__ import main as demo_main

    argv = []
    # Only an explicit --db: the demo deletes its database first, so it must never default
    # to $WAYLINE_DB or ./wayline.db, which may hold real runs.
    if args.db is not None:
        argv += ["--db", args.db]
    argv += ["--keep"] * args.keep + ["--no-kill"] * args.no_kill
    if args.otlp_endpoint:
        argv += ["--otlp-endpoint", args.otlp_endpoint]  # the demo's workers configure their own export
    return demo_main(argv)


_OTLP_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def _telemetry(args: argparse.Namespace) -> Any:
    """Set up OTLP export if asked (``--otlp-endpoint`` or the standard variables), else None."""
    if args.otlp_endpoint is None and not any(os.environ.get(v) for v in _OTLP_VARIABLES):
        return None
    from ..runtime import configure_telemetry

    return configure_telemetry(args.otlp_endpoint, service_name="wayline-cli")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``wayline`` command with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.log_level, args.log_format)
    opts = cmd.Options(
        db=args.db or os.environ.get("WAYLINE_DB") or "wayline.db", json=args.json, lock_timeout=args.lock_timeout
    )
    try:
        if args.command == "demo":
            return _run_demo(args)
        if args.command == "asl" and args.asl_command == "validate":
            return cmd.asl_validate(opts, args.file)
        action = _dispatch(args, opts)
        if action is None:
            sub = " ".join(filter(None, [args.command]))
            parser.error(f"choose a command{' after ' + repr(sub) if sub else ''}")
        telemetry = _telemetry(args)
        try:
            return asyncio.run(action())
        finally:
            if telemetry is not None:
                telemetry.shutdown()  # exports what is still buffered
    except KeyboardInterrupt:
        sys.stderr.write("wayline: interrupted\n")
        for note in opts.on_interrupt:
            sys.stderr.write(f"wayline: {note}\n")
        return INTERRUPTED
    except Exception as raw:
        exc = leaf_error(raw)
        if isinstance(exc, BrokenPipeError):
            # The reader went away (`wayline runs history X | head`): stop quietly, and keep
            # Python from complaining again when it flushes stdout at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return FAILED
        if isinstance(exc, CliError):
            sys.stderr.write(f"wayline: error: {exc}\n")
            return exc.code
        if isinstance(exc, WaylineError):
            sys.stderr.write(f"wayline: error: {message_for(exc, opts.db)}\n")
            return FAILED
        log.debug("unexpected error", exc_info=exc)
        sys.stderr.write(
            f"wayline: internal error: {type(exc).__name__}: {exc} (rerun with --log-level DEBUG for the traceback)\n"
        )
        return FAILED
