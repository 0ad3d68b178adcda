"""``on_failure=``: the workflow started when a run fails for good.

Its run id is ``"<handler>@failure:<failed run id>"``, so starting it twice starts one run;
its input is ``{"run_id", "workflow", "error", "cause", "input"}`` and it takes the failed
run's metadata (a correlation id). It is started when the failed run's final checkpoint has
committed; a crash in between is made good when a runtime next opens the database
(`recover_handlers`, over the runs that failed in the last day).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..persistence import RunRecord, RunStatus, Store
from ._metadata import user_metadata
from ._workflows import Registry, Workflow

log = logging.getLogger("wayline")

#: How far back a runtime opening the database looks for failed runs whose handler may not
#: have started (a crash right after the failure), and how many per workflow at most.
RECOVERY_WINDOW = 86400.0
RECOVERY_LIMIT = 1000

Create = Callable[[Workflow, Any, str, dict[str, Any]], Awaitable[object]]


def handler_run_id(handler: str, failed_run_id: str) -> str:
    return f"{handler}@failure:{failed_run_id}"


async def start_handler(registry: Registry, create: Create, failed: RunRecord) -> None:
    """Start the on_failure run of ``failed`` (nothing if its workflow declares none)."""
    handler = getattr(registry.get(failed.workflow), "on_failure", None)
    if handler is None:
        return
    target = registry.get(handler.name)
    if target is None:
        log.error(
            "run %s failed, and its on_failure workflow %r is not registered; pass it to open_runtime",
            failed.run_id,
            handler.name,
        )
        return
    error = failed.error
    payload = {
        "run_id": failed.run_id,
        "workflow": failed.workflow,
        "error": error.error if error is not None else None,
        "cause": error.cause if error is not None else None,
        "input": failed.input,
    }
    await create(target, payload, handler_run_id(handler.name, failed.run_id), user_metadata(failed.metadata))


async def recover_handlers(store: Store, registry: Registry, create: Create, now: float) -> None:
    """Start the on_failure runs a crash may have kept from starting."""
    for wf in registry.newest():
        handler = getattr(wf, "on_failure", None)
        if handler is None:
            continue
        failed = await store.list_runs(
            statuses=[RunStatus.FAILED],
            workflow=wf.name,
            since=now - RECOVERY_WINDOW,
            newest_first=True,
            limit=RECOVERY_LIMIT,
        )
        for rec in failed:
            if await store.get_run(handler_run_id(handler.name, rec.run_id)) is None:
                await start_handler(registry, create, rec)
