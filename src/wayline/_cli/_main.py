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
from .._errors import InvalidArgumentError, PayloadError, WaylineError
from ..persistence import OVERLAP_POLICIES
from ..runtime import JsonLogFormatter, RunLogFilter
from . import (
    _commands as cmd,
    _events as events,
    _keys as keys,
    _replay as replay,
    _schedules as schedules,
    _workers as workers,
)
from ._errors import FAILED, INTERRUPTED, USAGE, CliError, error_ids, leaf_error, message_for
from ._output import emit_error

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

    json_errors = False

    def error(self, message: str) -> NoReturn:
        text = f"{message} (see `{self.prog} --help`)"
        if self.json_errors:
            emit_error("UsageError", text, USAGE)
        else:
            sys.stderr.write(f"{self.prog}: error: {text}\n")
        sys.exit(USAGE)


class _JsonErrorParser(_Parser):
    """The parser when ``--json`` is among the arguments: its errors are JSON documents too."""

    json_errors = True


#: The options every command takes, before or after its name; `wayline --help` lists them once.
_COMMON: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    (
        ("--db",),
        {
            "metavar": "PATH",
            "default": None,
            "help": "the database file or a postgresql://user@host/db URL (default: $WAYLINE_DB, else ./wayline.db)",
        },
    ),
    (("--json",), {"action": "store_true", "default": False, "help": "print one JSON document on stdout, errors too"}),
    (
        ("--log-level",),
        {"type": str.upper, "choices": _LEVELS, "default": "WARNING", "help": "log level on stderr (default: WARNING)"},
    ),
    (
        ("--log-format",),
        {"choices": ("text", "json"), "default": "text", "help": "log records on stderr as text or JSON lines"},
    ),
    (
        ("--otlp-endpoint",),
        {
            "metavar": "URL",
            "default": None,
            "help": "export traces and metrics over OTLP/HTTP to this collector (e.g. http://localhost:4318); "
            "without it, the standard OTEL_EXPORTER_OTLP_ENDPOINT variables turn export on",
        },
    ),
    (
        ("--lock-timeout",),
        {
            "type": float,
            "metavar": "SECONDS",
            "default": 5.0,
            "help": "how long to wait for a database locked by another process (default: 5)",
        },
    ),
)

_COMMON_NOTE = (
    "Common options (--db, --json, --log-level, --log-format, --otlp-endpoint, --lock-timeout) "
    "go before or after the command; `wayline --help` describes them."
)


def _add_common(parser: argparse.ArgumentParser, *, top: bool, skip: tuple[str, ...] = ()) -> None:
    """The common options: described on the top-level parser; accepted but not listed again on
    each subcommand, where they default to SUPPRESS so an option given before the command is
    not reset by the subparser."""
    group = parser.add_argument_group("common options") if top else parser
    for flags, spec in _COMMON:
        if flags[0] in skip:
            continue
        options = dict(spec)
        if not top:
            options.update(default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        group.add_argument(*flags, **options)


_RUN_ID = "the run's id"
_SCHEDULE_ID = "the schedule's id"
_RESOURCES = "Task resources: MODULE:MAPPING, a dict of Task Resource name or ARN to async callable in MODULE"


def build_parser(*, json_errors: bool = False) -> argparse.ArgumentParser:
    """The ``wayline`` argument parser; ``json_errors`` makes its usage errors JSON documents."""
    parser_class = _JsonErrorParser if json_errors else _Parser
    parser = parser_class(
        prog="wayline",
        description="Inspect and steer wayline runs; start workflows; validate and run Step Functions state machines.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common(parser, top=True)
    parser.add_argument("--version", action="version", version=f"wayline {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=parser_class)

    def group(name: str, help: str, dest: str) -> Any:
        p: argparse.ArgumentParser = commands.add_parser(name, help=help, description=help, epilog=_COMMON_NOTE)
        _add_common(p, top=False)
        return p.add_subparsers(dest=dest, metavar="COMMAND", parser_class=parser_class)

    def command(within: Any, name: str, help: str, skip: tuple[str, ...] = ()) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = within.add_parser(name, help=help, description=help, epilog=_COMMON_NOTE)
        _add_common(p, top=False, skip=skip)
        return p

    runs = group("runs", "list runs, show one, print its history or its trace, wait for it", "runs_command")
    p = command(runs, "list", "list runs, the most recent first")
    p.add_argument("--status", metavar="S", help="only runs in status S (comma-separated: FAILED,CANCELLED)")
    p.add_argument("--workflow", metavar="W", help="only runs of workflow W")
    p.add_argument("--since", metavar="WHEN", help="only runs created since WHEN: 30m, 1h, 2d, or an ISO 8601 time")
    p.add_argument("--limit", type=int, default=100, metavar="N", help="at most N runs (default: 100)")
    p.add_argument(
        "--where",
        action="append",
        metavar="KEY=VALUE",
        help="only runs whose metadata KEY is the string VALUE (KEY:=JSON for a number or boolean: amount:=5); "
        "repeat to require several",
    )
    p.add_argument("--tag", metavar="T", help="only runs tagged T")
    p = command(runs, "purge", "delete finished runs that ended before a time, with their history and stored values")
    p.add_argument(
        "--before", required=True, metavar="WHEN", help="runs that ended before WHEN: 30d (ago), or an ISO 8601 time"
    )
    p.add_argument("--status", metavar="S", help="only runs in status S (comma-separated; finished ones only)")
    p.add_argument("--workflow", metavar="W", help="only runs of workflow W")
    p.add_argument("--dry-run", action="store_true", help="count the runs that would go, delete nothing")
    p = command(runs, "show", "a run's status, workflow, timestamps, vars, what it waits for, output or error")
    p.add_argument("run_id", metavar="RUN_ID", help=_RUN_ID)
    p = command(runs, "history", "a run's events, oldest first")
    p.add_argument("run_id", metavar="RUN_ID", help=_RUN_ID)
    p = command(runs, "trace", "a run's OpenTelemetry trace id, and a link to it in your trace viewer")
    p.add_argument("run_id", metavar="RUN_ID", help=_RUN_ID)
    p.add_argument(
        "--trace-url",
        metavar="TEMPLATE",
        default=os.environ.get("WAYLINE_TRACE_URL"),
        help="the viewer's link with {trace_id} (and optionally {run_id}) to fill in, e.g. "
        "'http://localhost:16686/trace/{trace_id}' (default: $WAYLINE_TRACE_URL)",
    )
    p = command(runs, "wait", "wait until a run ends, then show how (exit 1 unless it succeeded)")
    p.add_argument("run_id", metavar="RUN_ID", help=_RUN_ID)
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="give up after SECONDS (exit 1)")

    wk = group("workers", "the workers that run the database's runs", "workers_command")
    p = command(
        wk,
        "list",
        "the workers: on PostgreSQL each registered worker with its host, pid, the unfinished runs it owns, "
        "its last heartbeat and how long its lease has left (a worker whose lease expired is dead or paused: "
        "the others take its runs); on SQLite the one process that owns the database, if any",
    )
    p.epilog = (
        "Ages are by this host's clock against times the database server stamped. On SQLite the owner is read "
        "from /proc/locks (Linux): a process in another PID namespace (container) is not seen. " + _COMMON_NOTE
    )

    p = command(commands, "start", "start a run of a code workflow (an @workflow in a Python module)")
    p.add_argument("workflow", metavar="MODULE:WORKFLOW", help="where the workflow is, e.g. my_app.flows:order")
    p.add_argument("--input", metavar="JSON", help="the run's input (required if the workflow takes one)")
    p.add_argument("--run-id", metavar="ID", help="the run's id (default: a fresh one); an existing id is that run")
    p.add_argument(
        "--wait",
        action="store_true",
        help="run it here until it ends and print its output (exit 1 unless it succeeded); "
        "without it, the run is committed and left for a worker",
    )

    p = command(commands, "signal", "send a signal to a run")
    p.add_argument("run_id", metavar="RUN_ID", help="the run to signal")
    p.add_argument("name", metavar="NAME", help="the signal's name, as the run waits for it (ctx.wait_signal)")
    p.add_argument("payload", metavar="JSON", nargs="?", default="null", help="the payload (default: null)")

    p = command(commands, "cancel", "cancel a run")
    p.add_argument("run_id", metavar="RUN_ID", help="the run to cancel")
    p.add_argument("--reason", metavar="R", help="why, recorded with the cancellation")

    cb = group("callback", "complete, fail or heartbeat a callback token", "callback_command")
    p = command(cb, "complete", "complete the callback with TOKEN, giving the waiting step its output")
    p.add_argument("token", metavar="TOKEN", help="the token the run handed out")
    p.add_argument("output", metavar="JSON", help="the waiting step's output")
    p = command(cb, "fail", "fail the callback with TOKEN")
    p.add_argument("token", metavar="TOKEN", help="the token the run handed out")
    p.add_argument("--error", required=True, metavar="E", help="the error name the run sees")
    p.add_argument("--cause", metavar="C", help="a readable cause")
    p = command(cb, "heartbeat", "report that the work behind TOKEN is still alive")
    p.add_argument("token", metavar="TOKEN", help="the token the run handed out")

    ev = group("events", "send events (they start triggered runs and wake waiting ones) or list them", "events_command")
    p = command(ev, "send", "send an event: committed before the command returns; the worker starts its runs")
    p.add_argument("name", metavar="NAME", help="the event's name, as triggers and waits name it (order/created)")
    p.add_argument(
        "--data", default="null", metavar="JSON", help="the event's data (default: null; @FILE reads a file)"
    )
    p.add_argument("--id", metavar="ID", help="the event's id: the same id within 24 hours is a duplicate")
    p.add_argument(
        "--metadata",
        action="append",
        metavar="KEY=VALUE",
        help="an entry the runs it starts take as metadata (KEY:=JSON for a number or boolean); repeat for several",
    )
    p = command(ev, "list", "the most recent events, oldest first")
    p.add_argument("--name", metavar="NAME", help="only events called NAME")
    p.add_argument("--limit", type=int, default=20, metavar="N", help="at most N events (default: 20)")

    p = command(commands, "redrive", "restart a FAILED state machine run from the state that failed")
    p.add_argument("run_id", metavar="RUN_ID", help="the failed run")
    p.add_argument("--definition", required=True, metavar="FILE", help="the run's state machine definition (ASL JSON)")
    p.add_argument("--resources", metavar="MODULE:MAPPING", help=_RESOURCES)

    ks = group("keys", "encryption keys: re-encrypt stored secrets with the newest key", "keys_command")
    p = command(
        ks,
        "rotate",
        "re-encrypt every stored Secret (and encrypted payload) with the first key of $WAYLINE_ENCRYPTION_KEY "
        "('new-id:NEWKEY,old-id:OLDKEY'), in small batches, while runs go on",
    )
    p.add_argument("--batch-size", type=int, default=100, metavar="N", help="runs per write transaction (default: 100)")
    sch = group("schedules", "list, show, pause, resume, trigger, backfill or delete schedules", "schedules_command")
    command(sch, "list", "every schedule: when it fires, its state, its next fire and last run")
    p = command(sch, "show", "a schedule: its definition, state, next fires, last runs and recent actions")
    p.add_argument("schedule_id", metavar="ID", help=_SCHEDULE_ID)
    p = command(sch, "pause", "stop a schedule firing until it is resumed (triggers and backfills still run)")
    p.add_argument("schedule_id", metavar="ID", help=_SCHEDULE_ID)
    p.add_argument("--note", metavar="TEXT", help="why: `schedules show` says it")
    p = command(sch, "resume", "let a paused schedule fire again, from now on")
    p.add_argument("schedule_id", metavar="ID", help=_SCHEDULE_ID)
    p.add_argument("--note", metavar="TEXT", help="a note to keep with it")
    p = command(sch, "trigger", "fire a schedule once now (the worker starts the run)")
    p.add_argument("schedule_id", metavar="ID", help=_SCHEDULE_ID)
    p.add_argument("--overlap", choices=OVERLAP_POLICIES, help="the overlap policy (default: the schedule's)")
    p = command(sch, "backfill", "fire every time of a schedule between two instants, as if they had come")
    p.add_argument("schedule_id", metavar="ID", help=_SCHEDULE_ID)
    p.add_argument("--start", required=True, metavar="WHEN", help="the first instant, ISO 8601 (UTC unless an offset)")
    p.add_argument("--end", required=True, metavar="WHEN", help="the last instant, included")
    p.add_argument("--overlap", choices=OVERLAP_POLICIES, help="the overlap policy (default: buffer_all)")
    p = command(sch, "delete", "delete a schedule (the runs it started go on)")
    p.add_argument("schedule_id", metavar="ID", help=_SCHEDULE_ID)

    p = command(
        commands,
        "replay",
        "replay stored runs of a code workflow against new code, before deploying it; exit 1 if any "
        "would fail with NonDeterminismError (or now raise)",
    )
    p.add_argument("--workflow", required=True, metavar="MODULE:WORKFLOW", help="the new code, e.g. my_app.flows:order")
    p.add_argument("--run-id", action="append", metavar="ID", help="only this run (repeat for several)")
    p.add_argument("--status", metavar="S", help="only runs in status S (default: RUNNING,WAITING,PENDING)")
    p.add_argument("--all", action="store_true", help="finished runs too")
    p.add_argument(
        "--any-version",
        action="store_true",
        help="runs of every version of the workflow, not only its version= (a run whose version is no "
        "longer registered resumes on the newest)",
    )

    asl = group("asl", "validate or run an Amazon States Language definition", "asl_command")
    p = command(asl, "validate", "check a definition; every problem is listed with its path")
    p.add_argument("file", metavar="FILE", help="the definition (ASL JSON)")
    p = command(asl, "run", "run a definition durably on the database and print its output")
    p.add_argument("file", metavar="FILE", help="the definition (ASL JSON)")
    p.add_argument("--input", default="{}", metavar="JSON", help="the execution input (default: {})")
    p.add_argument("--resources", metavar="MODULE:MAPPING", help=_RESOURCES)
    p.add_argument("--name", metavar="NAME", help="the state machine's name (default: the file name without .json)")
    p.add_argument("--run-id", metavar="ID", help="the run's id; an existing id resumes or reports that run")

    from ..demo import __main__ as demo

    # The demo takes its own --db: it never uses $WAYLINE_DB or ./wayline.db, and refuses a
    # database with other workflows' runs (it recreates the one it runs on).
    p = command(commands, "demo", "run the crash-and-resume demo (python -m wayline.demo)", skip=("--db",))
    p.description = demo.DESCRIPTION
    p.epilog = (
        "With --json, the outcome is one JSON document on stdout, the narration on stderr. --json and "
        "--otlp-endpoint are common options, described in `wayline --help`; the demo's --db is its own."
    )
    p.add_argument("--db", metavar="PATH", default=argparse.SUPPRESS, help=demo.DB_HELP)
    p.add_argument("--keep", action="store_true", help=demo.KEEP_HELP)
    p.add_argument("--no-kill", action="store_true", help=demo.NO_KILL_HELP)
    return parser


class _TextFormatter(logging.Formatter):
    """``time LEVEL logger: message [run_id=... step=...]``."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = " ".join(f"{k}={record.__dict__[k]}" for k in RunLogFilter.FIELDS if record.__dict__.get(k) is not None)
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
        or getattr(args, "asl_command", None)
        or getattr(args, "schedules_command", None)
        or getattr(args, "keys_command", None)
        or getattr(args, "events_command", None)
        or getattr(args, "workers_command", None),
    ):
        case "workers", "list":
            return lambda: workers.workers_list(opts)
        case "keys", "rotate":
            return lambda: keys.keys_rotate(opts, args.batch_size)
        case "runs", "purge":
            return lambda: cmd.runs_purge(opts, args.before, args.status, args.workflow, args.dry_run)
        case "runs", "list":
            return lambda: cmd.runs_list(
                opts, args.status, args.workflow, args.since, args.limit, args.where or [], args.tag
            )
        case "runs", "show":
            return lambda: cmd.runs_show(opts, args.run_id)
        case "runs", "history":
            return lambda: cmd.runs_history(opts, args.run_id)
        case "runs", "trace":
            return lambda: cmd.runs_trace(opts, args.run_id, args.trace_url)
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
        case "start", _:
            return lambda: cmd.start(opts, args.workflow, args.input, args.run_id, args.wait)
        case "redrive", _:
            return lambda: cmd.redrive(opts, args.run_id, args.definition, args.resources)
        case "schedules", "list":
            return lambda: schedules.schedules_list(opts)
        case "schedules", "show":
            return lambda: schedules.schedules_show(opts, args.schedule_id)
        case "schedules", "pause":
            return lambda: schedules.schedules_pause(opts, args.schedule_id, args.note)
        case "schedules", "resume":
            return lambda: schedules.schedules_resume(opts, args.schedule_id, args.note)
        case "schedules", "trigger":
            return lambda: schedules.schedules_trigger(opts, args.schedule_id, args.overlap)
        case "schedules", "backfill":
            return lambda: schedules.schedules_backfill(opts, args.schedule_id, args.start, args.end, args.overlap)
        case "schedules", "delete":
            return lambda: schedules.schedules_delete(opts, args.schedule_id)
        case "events", "send":
            return lambda: events.events_send(opts, args.name, args.data, args.id, args.metadata or [])
        case "events", "list":
            return lambda: events.events_list(opts, args.name, args.limit)
        case "replay", _:
            return lambda: replay.replay(opts, args.workflow, args.run_id, args.status, args.all, args.any_version)
        case "asl", "run":
            return lambda: cmd.asl_run(opts, args.file, args.input, args.resources, args.name, args.run_id)
    return None


def _run_demo(args: argparse.Namespace) -> int:
    from ..demo.__main__ import run

    # Only an explicit --db, never $WAYLINE_DB or ./wayline.db; the demo itself refuses a
    # database with other workflows' runs. Its workers configure their own OTLP export.
    return run(args.db, keep=args.keep, kill=not args.no_kill, as_json=args.json, otlp_endpoint=args.otlp_endpoint)


_OTLP_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def _telemetry(args: argparse.Namespace) -> Any:
    """Set up OTLP export if asked (``--otlp-endpoint`` or the standard variables), else None."""
    if args.otlp_endpoint is None and not any(os.environ.get(v) for v in _OTLP_VARIABLES):
        return None
    from ..runtime import configure_telemetry

    return configure_telemetry(args.otlp_endpoint, service_name="wayline-cli")


def _fail(opts: cmd.Options, kind: str, message: str, code: int, ids: dict[str, Any] | None = None) -> int:
    """Report an error: one line on stderr, or with ``--json`` one JSON document on stdout."""
    if opts.json:
        emit_error(kind, message, code, ids)
    else:
        sys.stderr.write(f"wayline: error: {message}\n")
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``wayline`` command with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # Looked for before parsing, so that a command line argparse refuses is a JSON error too.
    parser = build_parser(json_errors="--json" in argv)
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
        if opts.json:
            emit_error("Interrupted", " ".join(["interrupted", *opts.on_interrupt]), INTERRUPTED)
            return INTERRUPTED
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
            return _fail(opts, type(exc).__name__, str(exc), exc.code)
        if isinstance(exc, WaylineError):
            # Data or an argument the command line gave that wayline refuses: a bad call (2).
            code = USAGE if isinstance(exc, PayloadError | InvalidArgumentError) else FAILED
            return _fail(opts, type(exc).__name__, message_for(exc, opts.db), code, error_ids(exc))
        log.debug("unexpected error", exc_info=exc)
        return _fail(
            opts,
            "InternalError",
            f"internal error: {type(exc).__name__}: {exc} (rerun with --log-level DEBUG for the traceback)",
            FAILED,
        )
