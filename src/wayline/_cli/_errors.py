"""How the CLI fails: one line on stderr, exit 1 for a failed operation, 2 for a bad call."""

from __future__ import annotations

from typing import Any

from .._errors import (
    DatabaseOwnedError,
    RunNotFoundError,
    WaylineError,
    WorkflowNotFoundError,
)
from ..persistence import redact_url

#: Exit codes: success, an operation that failed, a command line that was wrong.
OK, FAILED, USAGE = 0, 1, 2
INTERRUPTED = 130


class CliError(Exception):
    """An operation failed for a reason the user can act on; exit status 1 unless told."""

    def __init__(self, message: str, code: int = FAILED) -> None:
        self.code = code
        super().__init__(message)


class UsageError(CliError):
    """The command line itself is wrong (an argument that does not parse): exit status 2."""

    def __init__(self, message: str) -> None:
        super().__init__(message, USAGE)


def leaf_error(exc: BaseException) -> BaseException:
    """The one real error inside nested exception groups, or ``exc`` itself."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def error_ids(exc: WaylineError) -> dict[str, Any]:
    """The ids and values an error carries as attributes (``run_id``, ``token``...), for JSON."""
    return {
        k: v
        for k, v in vars(exc).items()
        if not k.startswith("_") and isinstance(v, str | int | float | bool | type(None)) and k != "args"
    }


def message_for(exc: WaylineError, db: str) -> str:
    """The CLI's wording of a wayline error: the runtime's message, with hints that name
    commands instead of Python calls where the two differ."""
    if db.startswith(("postgresql://", "postgres://")):
        db = redact_url(db)  # never print a password
    if isinstance(exc, RunNotFoundError):
        return f"no run with id {exc.run_id!r} in {db!r}; list the runs with `wayline runs list`"
    if isinstance(exc, DatabaseOwnedError):
        return (
            f"database {db!r} is run by another process (a worker holds its owner lock); this command "
            "needs the database to itself, so stop that process first, or use another database file "
            "(in the worker's own code, rt.start and rt.redrive do the same)"
        )
    if isinstance(exc, WorkflowNotFoundError) and exc.run_id is not None:
        return (
            f"run {exc.run_id!r} needs workflow {exc.name!r}, which this command does not have; "
            "only a worker that registers it can run it"
        )
    # The rest already say what happened and what to do; an AslDefinitionError adds one
    # line per problem, each with its path.
    return str(exc)
