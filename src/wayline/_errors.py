"""The exception hierarchy: one root, precise subclasses that carry ids as attributes.

Each message is built in the constructor so every raise site says the same thing:
what happened, and what to do about it.
"""

from __future__ import annotations

from typing import Any


class WaylineError(Exception):
    """Root of every error wayline raises on purpose."""


class StoreError(WaylineError):
    """The store could not read or write (disk full, I/O error, closed store)."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__(message)


class DatabaseLockedError(StoreError):
    """Another process holds the database lock for longer than the busy timeout."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__(
            f"database {path!r} is locked by another process or connection and stayed locked "
            f"for {timeout:g}s; stop the other process or open a different database file",
            path=path,
        )


class DatabaseOwnedError(DatabaseLockedError):
    """Another runtime already runs the runs of this database."""

    def __init__(self, path: str) -> None:
        StoreError.__init__(
            self,
            f"database {path!r} is already run by another runtime (in this or another process); "
            "two runtimes would run the same steps twice. Stop the other one, or open this one "
            "with open_runtime(..., recover=False) to use the database as a client",
            path=path,
        )


class DatabaseCorruptError(StoreError):
    """The file is not a SQLite database, or its wayline schema is damaged."""

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(
            f"database {path!r} is not a usable wayline database ({detail}); restore it from a "
            "backup or point wayline at a new file",
            path=path,
        )


class StoreUnavailableError(StoreError):
    """The database cannot be written right now (disk full, I/O error, a lock held too long):
    this call stored nothing. Runs already started are not failed: they wait, and go on by
    themselves once the store accepts writes again.

    Attributes:
        reason: what is wrong and what to do about it.
        since: when the store stopped accepting writes (epoch seconds).
    """

    def __init__(self, path: str, reason: str, since: float) -> None:
        self.reason = reason
        self.since = since
        super().__init__(
            f"{reason}. Nothing was stored for this call: retry it once the database accepts writes "
            "again (runs already started wait meanwhile, and then go on by themselves)",
            path=path,
        )


class DatabaseDeletedError(StoreError):
    """The database file was deleted or replaced while the runtime had it open."""

    def __init__(self, path: str, detail: str, copy_from: str | None = None) -> None:
        self.detail = detail
        self.copy_from = copy_from
        rescue = (
            f" Until this process exits, the data is still readable at {copy_from!r}: copy it back to "
            f"{path!r} (or elsewhere) before stopping the process, then restart on the copy."
            if copy_from
            else ""
        )
        super().__init__(
            f"database {path!r} was {detail} while this runtime had it open: whatever it committed "
            "is no longer in any file and is lost when this process exits. wayline accepts no more "
            f"work on it.{rescue} Otherwise restore the file from a backup and restart; never delete "
            "a database (or its -wal and -shm files) that a runtime has open",
            path=path,
        )


class DatabaseReadOnlyError(StoreError):
    """The database cannot be opened for writing: the file, its directory or its filesystem
    is read-only."""

    def __init__(self, path: str, why: str) -> None:
        self.why = why
        super().__init__(
            f"database {path!r} is read-only: {why}. wayline writes a checkpoint after every step, so it "
            "needs to write the file and to create its -wal and -shm files beside it: make them writable "
            "(remount the filesystem read-write, or fix the permissions), or copy the database to a "
            "writable place and open the copy",
            path=path,
        )


class DatabaseLinkedError(StoreError):
    """The database file has more than one hard link (name)."""

    def __init__(self, path: str, links: int) -> None:
        self.links = links
        super().__init__(
            f"database {path!r} has {links} hard links (names). SQLite names the -wal and -shm files "
            "after the name a process opens, so two names give two write-ahead logs: each process would "
            "see its own view, and writes through both corrupt the file. Remove the other names (find them "
            f"with `find / -samefile {path}`) and open the database through one name only (a symbolic "
            "link is fine)",
            path=path,
        )


class WalDamagedError(DatabaseCorruptError):
    """The write-ahead log is damaged in the middle: committed transactions follow the damage,
    and SQLite would drop them without a word.

    Attributes:
        frame: the first damaged frame (0: the log's header).
        frames: frames in the log.
        commits: committed transactions after the one holding the damage.
    """

    def __init__(self, path: str, frame: int, frames: int, commits: int) -> None:
        self.frame = frame
        self.frames = frames
        self.commits = commits
        self.detail = f"write-ahead log damaged at frame {frame} of {frames}" if frame else "WAL header damaged"
        where = f"at frame {frame} of {frames}" if frame else "in its header"
        StoreError.__init__(
            self,
            f"database {path!r}: its write-ahead log {path + '-wal'!r} is damaged {where}, and {commits} "
            "committed transaction(s) follow the one holding the damage. SQLite stops reading the log at "
            "the first bad frame and would drop them without a word, so the database was not opened and "
            "nothing was changed. Copy the database and its -wal file aside first; then restore both from "
            "a backup, or accept losing the transactions from the damage on by checkpointing what SQLite "
            'can read: python -c "import sqlite3; '
            f"sqlite3.connect({path!r}).execute('PRAGMA wal_checkpoint(TRUNCATE)')\"",
            path=path,
        )


class SchemaVersionError(StoreError):
    """The database was written by a newer wayline than this one."""

    def __init__(self, path: str, found: int, supported: int) -> None:
        self.found = found
        self.supported = supported
        super().__init__(
            f"database {path!r} has schema version {found}, but this wayline supports up to "
            f"{supported}; upgrade wayline to open it",
            path=path,
        )


class PayloadError(WaylineError):
    """A value could not be encoded for storage (not msgspec-encodable)."""

    def __init__(self, what: str, detail: str, *, run_id: str | None = None) -> None:
        self.run_id = run_id
        self.what = what
        super().__init__(
            f"{what} cannot be stored: {detail}. Workflow inputs, step arguments and results, "
            "vars and signal payloads must be JSON-like data (dict, list, str, int, float, bool, "
            "None, bytes) or msgspec Structs"
        )


class MetadataError(WaylineError, ValueError):
    """Run metadata or tags that cannot be stored or searched: a key that is not a non-empty
    string or that the runtime reserves, a value that is not a str, int, float or bool."""

    def __init__(self, problem: str, *, run_id: str | None = None) -> None:
        self.run_id = run_id
        self.problem = problem
        where = f" of run {run_id!r}" if run_id else ""
        super().__init__(f"run metadata{where}: {problem}")


class VarsError(WaylineError, TypeError):
    """Typed ``ctx.vars`` (``@workflow(vars=...)``) that do not match their type: raised in the
    workflow body at the ``await`` that would have checkpointed them (and failing the run if the
    body does not catch it), or at ``@workflow`` for a type that cannot be used."""

    def __init__(self, workflow: str, problem: str, *, field: str | None = None, run_id: str | None = None) -> None:
        self.workflow = workflow
        self.field = field
        self.run_id = run_id
        where = f" of run {run_id!r}" if run_id else ""
        at = f" at field {field!r}" if field else ""
        super().__init__(f"ctx.vars{where} (workflow {workflow!r}){at}: {problem}")


class SignalPayloadError(PayloadError):
    """A signal's payload does not match the type the workflow waits for it as (raised in the
    body, at ``ctx.wait_signal(name, T)``; the workflow may catch it)."""

    def __init__(self, run_id: str, signal: str, expected: str, detail: str) -> None:
        self.run_id, self.what, self.signal = run_id, f"signal {signal!r}", signal
        WaylineError.__init__(
            self,
            f"run {run_id!r} got signal {signal!r} with a payload that is not a {expected}: {detail}; "
            "send one that is (rt.signal), or wait for a wider type",
        )


class InvalidArgumentError(WaylineError, ValueError, TypeError):
    """A public call got an argument of the wrong type, size or value (also a `ValueError`
    and a `TypeError`, as Python code expects of a bad argument)."""

    def __init__(self, call: str, argument: str, problem: str) -> None:
        self.call = call
        self.argument = argument
        super().__init__(f"{call}: {argument} {problem}")


class RunNotFoundError(WaylineError):
    """No run with this id exists in the store."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"no run with id {run_id!r}; check the id, or list runs with rt.list_runs()")


class WorkflowNotFoundError(WaylineError):
    """A run names a workflow that was not registered with the runtime."""

    def __init__(
        self, name: str, known: tuple[str, ...], *, run_id: str | None = None, other_definition: bool = False
    ) -> None:
        self.name = name
        self.run_id = run_id
        if other_definition:
            super().__init__(
                f"another definition is registered under the workflow name {name!r}: two workflows "
                "share a name; give each its own name=, and pass the one you start to open_runtime"
            )
            return
        listed = ", ".join(repr(k) for k in known) or "none"
        where = f" (needed by run {run_id!r})" if run_id else ""
        super().__init__(
            f"workflow {name!r} is not registered{where}; pass it in "
            f"open_runtime(..., workflows=[...]). Registered: {listed}"
        )


class VersionNotFoundError(WorkflowNotFoundError):
    """A version of a registered workflow was asked for, and no definition has that label."""

    def __init__(self, name: str, version: str, known: tuple[str, ...]) -> None:
        self.name = name
        self.version = version
        self.run_id = None
        listed = ", ".join(repr(k) for k in known) or "none"
        WaylineError.__init__(
            self,
            f"workflow {name!r} has no version {version!r} registered; registered versions: {listed}. "
            "Pass the definition labelled with that version= in open_runtime(..., workflows=[...]), "
            "or start another version",
        )


class DuplicateWorkflowError(WaylineError):
    """Two different definitions were registered under one workflow name and version."""

    def __init__(self, name: str, version: str) -> None:
        self.name = name
        self.version = version
        super().__init__(
            f"two different definitions are registered as workflow {name!r} version {version!r}; a run "
            "resumes with its version's definition, so each version needs a label of its own: give one "
            "a new version=, or register only one"
        )


class ScheduleSpecError(WaylineError, ValueError):
    """A schedule's definition is invalid: its cron expression, interval, time zone, policy..."""

    def __init__(self, schedule_id: str | None, problem: str) -> None:
        self.schedule_id = schedule_id
        self.problem = problem
        where = f"schedule {schedule_id!r}" if schedule_id else "schedule"
        super().__init__(f"{where}: {problem}")


class ScheduleNotFoundError(WaylineError):
    """No schedule with this id exists."""

    def __init__(self, schedule_id: str) -> None:
        self.schedule_id = schedule_id
        super().__init__(
            f"no schedule with id {schedule_id!r}; check the id, or list schedules with rt.list_schedules() "
            "(`wayline schedules list`)"
        )


class ScheduleExistsError(WaylineError):
    """A schedule with this id exists already."""

    def __init__(
        self, schedule_id: str, *, declared: bool = False, workflow: str | None = None, clash: bool = False
    ) -> None:
        self.schedule_id = schedule_id
        if clash:
            what = (
                f"is declared by workflow {workflow!r} (@workflow(schedules=...)), and a schedule made with "
                f"rt.create_schedule has that id; give the declared Schedule another id=, or delete the other "
                f"(`wayline schedules delete {schedule_id}`)"
            )
        elif declared:
            what = f"is declared by workflow {workflow!r} (@workflow(schedules=...)); it follows the code"
        else:
            what = "exists; change it with rt.get_schedule(id).update(...), or delete it first"
        super().__init__(f"schedule {schedule_id!r} {what}")


class ScheduleConflictError(WaylineError):
    """A schedule kept changing under a change to it (another process changes it too)."""

    def __init__(self, schedule_id: str, attempts: int) -> None:
        self.schedule_id = schedule_id
        super().__init__(
            f"schedule {schedule_id!r} was changed by someone else {attempts} times while this change was "
            "being made; nothing was changed: try again"
        )


class AliasError(WaylineError):
    """A `StateMachineAlias` is invalid, or routes to a version that is not registered."""

    def __init__(self, alias: str, machine: str, reason: str) -> None:
        self.alias = alias
        self.machine = machine
        super().__init__(f"alias {alias!r} of state machine {machine!r}: {reason}")


class ChildMachineNotFoundError(WorkflowNotFoundError):
    """A state machine starts a child execution of a machine that is not registered."""

    def __init__(self, machine: str, state: str, target: str, known: tuple[str, ...]) -> None:
        self.name = target
        self.run_id = None
        self.machine = machine
        self.state = state
        listed = ", ".join(repr(k) for k in known) or "none"
        WaylineError.__init__(
            self,
            f"state machine {machine!r}, state {state!r}: StateMachineArn {target!r} names no registered "
            "state machine (the name after its last ':' is looked up); register the child machine in "
            f"open_runtime(..., workflows=[...]) or fix the ARN. Registered state machines: {listed}",
        )


class RunAlreadyFinishedError(WaylineError):
    """An operation needs a live run, but the run has already ended."""

    def __init__(self, run_id: str, status: str, action: str) -> None:
        self.run_id = run_id
        self.status = status
        super().__init__(f"cannot {action} run {run_id!r}: it has already finished ({status})")


class RunConflictError(WaylineError):
    """rt.start was called with an existing run_id but a different workflow."""

    def __init__(self, run_id: str, existing: str, requested: str) -> None:
        self.run_id = run_id
        super().__init__(
            f"run {run_id!r} already exists as workflow {existing!r}, not {requested!r}; use a different run_id"
        )


class NonDeterminismError(WaylineError):
    """On replay, the workflow asked for a different step than the journal recorded."""

    def __init__(self, run_id: str, index: int, journaled: str, requested: str) -> None:
        self.run_id = run_id
        self.index = index
        self.journaled = journaled
        self.requested = requested
        super().__init__(
            f"run {run_id!r}: step #{index} was {journaled!r} when the run was checkpointed, but "
            f"the workflow code now asks for {requested!r} at that position; step names and order "
            "must stay stable for a run in flight (guard the change with ctx.patched, or register it as a new "
            "version beside the old one; `wayline replay` checks runs against new code before a deploy)"
        )


class RunFailed(WaylineError):
    """The run ended in FAILED; raised by ``RunHandle.result()``.

    Attributes:
        run_id: the failed run.
        error: the error name (an exception type name, or an ASL error such as ``States.Timeout``);
            None when the failure has no name (a state machine's Fail state without ``Error``).
        cause: a human-readable cause.
    """

    def __init__(self, run_id: str, error: str | None, cause: str | None) -> None:
        self.run_id = run_id
        self.error = error
        self.cause = cause
        what = ": ".join(part for part in (error, cause) if part)
        super().__init__(f"run {run_id!r} failed: {what}" if what else f"run {run_id!r} failed")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.run_id, self.error, self.cause))


class RunCancelled(WaylineError):
    """The run ended in CANCELLED; raised by ``RunHandle.result()``."""

    def __init__(self, run_id: str, reason: str | None) -> None:
        self.run_id = run_id
        self.reason = reason
        super().__init__(f"run {run_id!r} was cancelled" + (f": {reason}" if reason else ""))


class MissingExtraError(WaylineError, ImportError):
    """A feature needs packages from an optional extra of wayline that is not installed."""

    def __init__(self, feature: str, extra: str, missing: str) -> None:
        self.feature = feature
        self.extra = extra
        self.missing = missing
        super().__init__(
            f"{feature} needs the {extra!r} extra of wayline, which is not installed (missing: {missing}); "
            f"install it with: pip install 'wayline[{extra}]'"
        )


class TelemetryConfigError(WaylineError, ValueError):
    """An OpenTelemetry setting that `configure_telemetry` cannot honour (an unknown exporter
    name in ``OTEL_TRACES_EXPORTER``, a protocol this install does not have...)."""

    def __init__(self, setting: str, value: str, accepted: str) -> None:
        self.setting = setting
        self.value = value
        super().__init__(f"{setting}={value!r} is not supported by wayline's configure_telemetry: {accepted}")


class Cancelled(BaseException):
    """Thrown into a workflow body at the await where its run is cancelled (``rt.cancel``).

    A `BaseException`, as trio's ``Cancelled``: ``except Exception`` in workflow code cannot
    swallow it. Catch it explicitly (or use ``finally``) to run compensation steps, then let it
    propagate; the run ends CANCELLED and ``handle.result()`` raises `RunCancelled`.

    Attributes:
        reason: the reason given to ``rt.cancel``, if any.
    """

    def __init__(self, reason: str | None = None) -> None:
        self.reason = reason
        super().__init__(reason or "run cancelled")


class ContinueAsNew(BaseException):
    """Raised by ``ctx.continue_as_new(input)``: the run's current segment ends and the run
    goes on, under the same run id, from the top of its body with ``input``, a fresh history
    and a fresh journal.

    A `BaseException` for the same reason as `Cancelled`: ``except Exception`` in workflow
    code must not stop it. Do not catch it.

    Attributes:
        input: the input of the next segment.
    """

    def __init__(self, input: Any = None) -> None:
        self.input = input
        super().__init__("the run continues as new")


class ActivityError(WaylineError):
    """A step failed for good (retries exhausted or a non-retryable error).

    Raised inside the workflow at the ``await ctx.run(...)`` that failed, so the workflow can
    catch it and compensate; uncaught, it fails the run with ``error``/``cause``.
    """

    def __init__(self, step: str, error: str, cause: str | None, attempts: int) -> None:
        self.step = step
        self.error = error
        self.cause = cause
        self.attempts = attempts
        super().__init__(f"step {step!r} failed after {attempts} attempt(s): {error}: {cause}")


class ActivityTimeoutError(WaylineError):
    """One attempt of a step ran past its timeout (raised per attempt, then retried)."""

    def __init__(self, step: str, timeout: float) -> None:
        self.step = step
        self.timeout = timeout
        super().__init__(f"step {step!r} did not finish within its timeout of {timeout:g}s")


class NotRegisteredError(WaylineError):
    """A function was used as a workflow or activity without the decorator."""

    def __init__(self, obj: object, kind: str) -> None:
        super().__init__(f"{obj!r} is not a wayline {kind}; decorate it with @{kind}")


class RuntimeClosedError(WaylineError):
    """The runtime was used after ``open_runtime`` exited."""

    def __init__(self) -> None:
        super().__init__("the runtime is closed; use it inside `async with open_runtime(...)`")


class SignalTimeoutError(WaylineError):
    """``ctx.wait_signal`` waited longer than its timeout; catch it in the workflow to go on."""

    def __init__(self, run_id: str, name: str, timeout: float | None) -> None:
        self.run_id = run_id
        self.name = name
        self.timeout = timeout
        after = f" after {timeout:g}s" if timeout is not None else ""
        super().__init__(f"run {run_id!r}: no signal {name!r} arrived{after}")


class UpdateRejectedError(WaylineError):
    """``rt.update`` was refused: by the workflow's validator (nothing was written), or by
    the run itself (``upd.reject(error)``, recorded: a retry with the same update id gets it
    again).

    Attributes:
        run_id, name, update_id: the update.
        error: the error name; ``cause`` the reason.
    """

    def __init__(self, run_id: str, name: str, update_id: str, error: str, cause: str | None) -> None:
        self.run_id = run_id
        self.name = name
        self.update_id = update_id
        self.error = error
        self.cause = cause
        why = f"{error}: {cause}" if cause else error
        super().__init__(f"update {name!r} ({update_id}) of run {run_id!r} was rejected: {why}")


class UpdateTimeoutError(WaylineError):
    """``rt.update`` got no answer within its ``timeout``. The update was accepted and may
    still be applied: call ``rt.update`` again with the same ``update_id`` for its answer."""

    def __init__(self, run_id: str, name: str, update_id: str, timeout: float) -> None:
        self.run_id = run_id
        self.name = name
        self.update_id = update_id
        self.timeout = timeout
        super().__init__(
            f"update {name!r} of run {run_id!r} got no answer within {timeout:g}s; it was accepted and may still "
            f"be applied: call rt.update again with update_id={update_id!r} to wait for its answer"
        )


class UpdateNotAnsweredError(WaylineError):
    """The run ended without answering the update (it never reached ``ctx.wait_update`` for
    it, or took it and never replied)."""

    def __init__(self, run_id: str, name: str, update_id: str, status: str) -> None:
        self.run_id = run_id
        self.name = name
        self.update_id = update_id
        self.status = status
        super().__init__(
            f"run {run_id!r} ended ({status}) without answering update {name!r} ({update_id}); "
            "only a run that waits with ctx.wait_update and replies answers updates"
        )


class RedriveError(WaylineError):
    """``rt.redrive`` cannot restart this run (it did not fail, or its kind cannot be redriven)."""

    def __init__(self, run_id: str, reason: str) -> None:
        self.run_id = run_id
        super().__init__(f"cannot redrive run {run_id!r}: {reason}")


class CallbackTokenError(WaylineError):
    """``rt.complete_callback`` / ``fail_callback`` / ``heartbeat`` got a token that no run is
    waiting on: malformed, never issued, already used, timed out, or its run has ended."""

    def __init__(self, reason: str, run_id: str | None = None) -> None:
        self.reason = reason
        self.run_id = run_id
        super().__init__(f"callback token rejected: {reason}")


class CallbackError(ActivityError):
    """A ``ctx.wait_for_callback`` ended in failure: ``rt.fail_callback(token, error, cause)``,
    or a timeout, with ``error`` ``"States.Timeout"`` (the whole wait) or
    ``"States.HeartbeatTimeout"`` (no heartbeat in time). Catch it (or `ActivityError`) in the
    workflow to go on."""

    def __init__(self, step: str, error: str, cause: str | None) -> None:
        super().__init__(step, error, cause, 1)
        self.args = (f"callback of step {step!r} failed: {error}: {cause}",)

    def __str__(self) -> str:
        return str(self.args[0])


# --- PostgreSQL store ---------------------------------------------------------------------


class DatabaseUnreachableError(StoreError):
    """The PostgreSQL server cannot be reached (down, wrong host or port, network), or the
    connection was lost and could not be made again in time."""

    def __init__(self, url: str, detail: str) -> None:
        self.url = url
        super().__init__(
            f"cannot reach PostgreSQL at {url} ({detail}); check that the server is running and "
            "that the URL's host and port are right. Nothing was lost: every acknowledged write is committed",
            path=url,
        )


class DatabaseAuthError(StoreError):
    """The PostgreSQL server refused the URL's user or password."""

    def __init__(self, url: str, user: str, detail: str) -> None:
        self.url = url
        self.user = user
        super().__init__(
            f"PostgreSQL at {url} refused user {user!r} ({detail}); check the user and password in the "
            "URL (or PGPASSWORD / ~/.pgpass) and the server's pg_hba.conf",
            path=url,
        )


class DatabaseMissingError(StoreError):
    """The URL names a PostgreSQL database that does not exist."""

    def __init__(self, url: str, database: str) -> None:
        self.url = url
        self.database = database
        super().__init__(
            f"PostgreSQL database {database!r} does not exist at {url}; create it first "
            f"(`createdb {database}` or CREATE DATABASE {database}), wayline creates its tables itself",
            path=url,
        )


class DatabaseOwnedByWorkerError(DatabaseOwnedError):
    """Another live worker already runs the runs of this PostgreSQL database."""

    def __init__(self, url: str, worker_id: str, host: str, pid: int, seconds_left: float) -> None:
        self.url = url
        self.worker_id = worker_id
        StoreError.__init__(
            self,
            f"PostgreSQL database {url} is already run by worker {worker_id!r} (host {host!r}, pid {pid}); "
            "until the runtime runs several workers on one database, two would run the same steps twice. "
            f"Stop that worker, wait for its lease to expire ({seconds_left:.1f}s left if it is dead), or "
            "open this runtime with open_runtime(..., recover=False) to use the database as a client",
            path=url,
        )


class LeaseLostError(StoreError):
    """A checkpoint was refused: this worker no longer holds the run's lease (it expired and
    another worker claimed the run), so committing it would overwrite the new owner's state."""

    def __init__(self, run_id: str, worker_id: str, fence: int) -> None:
        self.run_id = run_id
        self.worker_id = worker_id
        self.fence = fence
        super().__init__(
            f"run {run_id!r}: worker {worker_id!r} lost its lease (fence {fence}) and may not commit it "
            "any more; another worker owns the run now. Drop the run from this worker: its last committed "
            "checkpoint is where the new owner goes on"
        )


class PostgresDriverMissingError(StoreError):
    """A ``postgresql://`` URL was given but asyncpg is not installed."""

    def __init__(self) -> None:
        super().__init__(
            "the PostgreSQL store needs the asyncpg driver; install it with pip install 'wayline[postgres]'"
        )
