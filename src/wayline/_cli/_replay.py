"""``wayline replay``: replay stored runs against new code before deploying it.

The database is opened as a client and only read; no activity runs and nothing is written
(`wayline.runtime.check_replay`). The exit status is 1 if any run would not replay.
"""

from __future__ import annotations

from ..persistence import RunStatus
from ..runtime import ReplayResult, WorkflowDef, check_replay
from . import _output as out
from ._args import load_workflow, parse_statuses
from ._commands import Options, _client
from ._errors import FAILED, OK, CliError


async def replay(
    opts: Options, target: str, run_ids: list[str] | None, status: str | None, all_runs: bool, any_version: bool
) -> int:
    """Replay the runs of the workflow at ``target`` (MODULE:WORKFLOW) against its code."""
    wf = load_workflow(target)
    if not isinstance(wf, WorkflowDef):
        raise CliError(
            f"replay: {target} is a state machine; its runs resume from their saved state and replay "
            "nothing, so there is nothing to check (give a code workflow, an @workflow function)"
        )
    statuses: list[RunStatus] | None = parse_statuses(status) if status else None
    if all_runs:
        statuses = None
    elif statuses is None:
        statuses = [RunStatus.PENDING, RunStatus.RUNNING, RunStatus.WAITING]
    async with _client(opts) as rt:
        results = await check_replay(rt.store, wf, run_ids=run_ids, statuses=statuses, any_version=any_version)
    bad = [r for r in results if not r.ok]
    if opts.json:
        out.emit_json(
            {
                "workflow": wf.name,
                "version": wf.version,
                "ok": not bad,
                "runs": [_doc(r) for r in results],
            }
        )
    else:
        print(_text(wf, results, any_version))
    return FAILED if bad else OK


def _doc(result: ReplayResult) -> dict[str, object]:
    return {
        "run_id": result.run_id,
        "version": result.version,
        "status": result.status.value,
        "verdict": result.verdict.value,
        "replayed": result.replayed,
        "error": result.error,
        "message": result.message,
    }


def _text(wf: WorkflowDef[object, object], results: list[ReplayResult], any_version: bool) -> str:
    which = "runs of any version" if any_version else f"runs of version {wf.version!r}"
    if not results:
        return f"no {which} of workflow {wf.name!r} match: nothing to replay"
    rows = [(r.run_id, r.version, r.status.value, r.verdict.value, str(r.replayed), r.message or "") for r in results]
    counts: dict[str, int] = {}
    for r in results:
        counts[r.verdict.value] = counts.get(r.verdict.value, 0) + 1
    summary = ", ".join(f"{n} {verdict}" for verdict, n in counts.items())
    head = out.table(("RUN_ID", "VERSION", "STATUS", "VERDICT", "POSITIONS", "DETAIL"), rows)
    return f"{head}\n{len(results)} {which} of {wf.name!r} replayed against this code: {summary}"
