"""``python -m wayline.demo [--db PATH] [--keep] [--no-kill] [--otlp-endpoint URL]``; exits 0 on success."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m wayline.demo",
        description="Run an order workflow on SQLite, kill its worker with SIGKILL mid-run, "
        "restart it and watch the run finish from its checkpoint.",
    )
    parser.add_argument(
        "--db",
        default=os.path.join(tempfile.gettempdir(), "wayline-demo.db"),
        help="SQLite database file (default: %(default)s)",
    )
    parser.add_argument("--keep", action="store_true", help="reuse the database instead of deleting it first")
    parser.add_argument("--no-kill", action="store_true", help="run the workflow once, uninterrupted")
    parser.add_argument(
        "--otlp-endpoint",
        metavar="URL",
        help="export the workers' traces and metrics over OTLP/HTTP to this collector, e.g. "
        "http://localhost:4318 (the run is one trace across the kill)",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--resume", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        from ._worker import run_worker

        return run_worker(args.db, args.resume, args.otlp_endpoint)

    from ._driver import run_demo

    try:
        return asyncio.run(
            run_demo(os.path.abspath(args.db), keep=args.keep, kill=not args.no_kill, otlp_endpoint=args.otlp_endpoint)
        )
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
