"""``python -m wayline.demo [--db PATH] [--keep] [--no-kill] [--json] [--otlp-endpoint URL]``.

Exits 0 when the run finished as an uninterrupted run would have, 1 when it did not, 2 when
the command line is refused (a ``--db`` with other workflows' runs, say).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys

DESCRIPTION = (
    "Run an order workflow in a worker process on a SQLite database, kill the worker with SIGKILL "
    "mid-run, start a new worker on the same database and watch the run finish from its checkpoint."
)
DB_HELP = (
    "the SQLite database to run on (default: a fresh temporary one, kept afterwards for you to "
    "inspect). A path that does not exist is created; a database that holds only earlier demo runs "
    "is started afresh (see --keep); one with runs of any other workflow is refused, never changed. "
    "$WAYLINE_DB is not used"
)
KEEP_HELP = "with --db of an earlier demo's database: reuse it as it is (the finished run is reported, not run again)"
NO_KILL_HELP = "run the workflow once, uninterrupted"
JSON_HELP = "print the outcome as one JSON document on stdout (the narration goes to stderr)"
OTLP_HELP = (
    "export the workers' traces and metrics over OTLP/HTTP to this collector, e.g. "
    "http://localhost:4318 (the run is one trace across the kill)"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wayline.demo", description=DESCRIPTION)
    parser.add_argument("--db", metavar="PATH", help=DB_HELP)
    parser.add_argument("--keep", action="store_true", help=KEEP_HELP)
    parser.add_argument("--no-kill", action="store_true", help=NO_KILL_HELP)
    parser.add_argument("--json", action="store_true", help=JSON_HELP)
    parser.add_argument("--otlp-endpoint", metavar="URL", help=OTLP_HELP)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--resume", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        from ._worker import run_worker

        return run_worker(args.db, args.resume, args.otlp_endpoint)
    return run(args.db, keep=args.keep, kill=not args.no_kill, as_json=args.json, otlp_endpoint=args.otlp_endpoint)


def run(db: str | None, *, keep: bool, kill: bool, as_json: bool, otlp_endpoint: str | None) -> int:
    """The demo as the command line asked for it; the exit status."""
    from ._database import DatabaseRefused, choose
    from ._driver import Summary, run_demo

    try:
        demo_db = choose(db, keep=keep)
    except DatabaseRefused as exc:
        if as_json:  # the same shape as the `wayline` command's errors under --json
            print(json.dumps({"error": {"type": "DatabaseRefused", "message": str(exc), "exit_status": 2}}, indent=2))
        else:
            sys.stderr.write(f"wayline demo: error: {exc}\n")
        return 2
    summary = Summary(demo_db.path)
    # With --json the narration is for people, on stderr; stdout carries the one document.
    narration = contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext()
    code = 130
    try:
        with narration:
            code = asyncio.run(run_demo(demo_db, kill=kill, otlp_endpoint=otlp_endpoint, summary=summary))
    except KeyboardInterrupt:
        summary.problems.append("interrupted")
    if as_json:
        print(json.dumps(summary.to_json(code), indent=2))
    return code


if __name__ == "__main__":
    sys.exit(main())
