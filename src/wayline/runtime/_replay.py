"""Replaying stored runs against new code, without running anything: `check_replay`.

Before deploying a change to a code workflow, replay the journals of its runs in flight
against the new code (`run.replay_body`: no activity runs, no timer is set, nothing is
written). A run whose journal the new code does not follow would fail with
`NonDeterminismError` after the deploy, and is reported; so is one whose body now raises
before the end of its journal where the run did not.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from ..persistence import UNFINISHED, AnyEvent, RunRecord, RunStatus, Store
from ._definitions import WorkflowDef
from .run import replay_body


class ReplayVerdict(enum.StrEnum):
    """How a stored run fares against the new code."""

    OK = "ok"  # the new code follows the run's journal to its end
    NONDETERMINISTIC = "nondeterministic"  # it asks for other steps: NonDeterminismError
    FAILS = "fails"  # the body raises before the end of the journal, where the run did not


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """One run replayed against new code (`check_replay`).

    Attributes:
        run_id: the run.
        version: the version the run started with.
        status: its status in the store.
        verdict: how it fares.
        error: the error name of a run that does not replay (``NonDeterminismError``...).
        message: what went wrong, as the run would report it.
        replayed: how many journal positions the new code took.
    """

    run_id: str
    version: str
    status: RunStatus
    verdict: ReplayVerdict
    error: str | None = None
    message: str | None = None
    replayed: int = 0

    @property
    def ok(self) -> bool:
        return self.verdict is ReplayVerdict.OK


def replay_run(record: RunRecord, history: list[AnyEvent], workflow: WorkflowDef[Any, Any]) -> ReplayResult:
    """Replay one stored run (its record and history) against ``workflow``'s code. Pure: no
    I/O, no activity, no clock beyond what the body itself reads."""
    ended, replayed, departure = replay_body(record, history, workflow)
    if departure is not None:
        verdict = ReplayVerdict.NONDETERMINISTIC
        return ReplayResult(
            record.run_id, record.version, record.status, verdict, "NonDeterminismError", departure, replayed
        )
    if ended is None or ended.status is not RunStatus.FAILED or ended.error is None:
        return ReplayResult(record.run_id, record.version, record.status, ReplayVerdict.OK, replayed=replayed)
    error = ended.error
    if error.error == "NonDeterminismError":
        verdict = ReplayVerdict.NONDETERMINISTIC
    elif record.status is RunStatus.FAILED and record.error == error:
        verdict = ReplayVerdict.OK  # it failed the same way when it ran
    else:
        verdict = ReplayVerdict.FAILS
    return ReplayResult(record.run_id, record.version, record.status, verdict, error.error, error.cause, replayed)


async def check_replay(
    store: Store,
    workflow: WorkflowDef[Any, Any],
    *,
    run_ids: Collection[str] | None = None,
    statuses: Collection[RunStatus] | None = UNFINISHED,
    any_version: bool = False,
) -> list[ReplayResult]:
    """Replay stored runs of ``workflow`` (by its name) against its code; one result per run.

    Args:
        store: the database the runs are in (opened by the caller; only read).
        workflow: the new code.
        run_ids: only these runs (default: every run of the workflow that matches the rest).
        statuses: only runs in these statuses (default: the unfinished ones, which a deploy
            resumes); None for all, finished runs included.
        any_version: runs of every version, not only those recorded under ``workflow.version``
            (a run whose version is no longer registered is resumed by the newest one).
    """
    if run_ids is not None:
        records = [rec for run_id in run_ids if (rec := await store.get_run(run_id)) is not None]
    else:
        records = await store.list_runs(statuses=statuses, workflow=workflow.name)
    out: list[ReplayResult] = []
    for rec in records:
        if rec.workflow != workflow.name or (not any_version and rec.version != workflow.version):
            continue
        if statuses is not None and run_ids is not None and rec.status not in statuses:
            continue
        out.append(replay_run(rec, await store.get_history(rec.run_id), workflow))
    return out
