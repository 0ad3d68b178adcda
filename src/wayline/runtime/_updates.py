"""``rt.update``: a request into a run, answered by the run, exactly once.

The update is validated first (the workflow's validator, if it declares one: a refusal writes
nothing), then committed to the run's inbox (the one route in) and delivered; the caller waits
for the answer the run checkpoints (`UpdateAnswered`) and hands over right after. A caller
that passes its own ``update_id`` may retry (after a timeout, or a crash of either side): the
retry finds the answer already recorded in the run's history, or waits for the pending one,
and never makes the run take the update twice.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from .._errors import (
    InvalidArgumentError,
    RunNotFoundError,
    UpdateNotAnsweredError,
    UpdateRejectedError,
    UpdateTimeoutError,
    WaylineError,
)
from ..actors import Clock
from ..persistence import RunRecord, Store, UpdateAnswered, UpdateMessage
from . import _inbox as inbox
from ._inbox import Mailboxes
from ._workflows import AslWorkflow, Registry

#: How often a caller whose run is owned by another process looks for the answer in the store.
POLL_INTERVAL = 0.05


class UpdateWaiters:
    """The callers of ``rt.update`` in this process, waiting for answers by update id."""

    def __init__(self) -> None:
        self._waiting: dict[str, list[asyncio.Future[UpdateAnswered | RunRecord]]] = {}
        self._by_run: dict[str, set[str]] = {}

    def wait(self, run_id: str, update_id: str) -> asyncio.Future[UpdateAnswered | RunRecord]:
        fut: asyncio.Future[UpdateAnswered | RunRecord] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(update_id, []).append(fut)
        self._by_run.setdefault(run_id, set()).add(update_id)
        return fut

    def forget(self, run_id: str, update_id: str, fut: asyncio.Future[Any]) -> None:
        futs = self._waiting.get(update_id)
        if futs is not None and fut in futs:
            futs.remove(fut)
            if not futs:
                del self._waiting[update_id]
                ids = self._by_run.get(run_id)
                if ids is not None:
                    ids.discard(update_id)
                    if not ids:
                        del self._by_run[run_id]

    def answered(self, run_id: str, event: UpdateAnswered) -> None:
        """The run recorded the answer ``event``."""
        for fut in self._waiting.pop(event.update_id, ()):
            if not fut.done():
                fut.set_result(event)
        ids = self._by_run.get(run_id)
        if ids is not None:
            ids.discard(event.update_id)

    def run_ended(self, record: RunRecord) -> None:
        """The run ended: the updates it did not answer never will be."""
        for update_id in self._by_run.pop(record.run_id, ()):
            for fut in self._waiting.pop(update_id, ()):
                if not fut.done():
                    fut.set_result(record)


async def update(
    store: Store,
    clock: Clock,
    runs: Mailboxes,
    registry: Registry,
    waiters: UpdateWaiters,
    run_id: str,
    name: str,
    payload: Any,
    *,
    timeout: float | None,  # noqa: ASYNC109 - on the runtime's clock
    update_id: str | None,
) -> Any:
    """See ``Runtime.update``."""
    if timeout is not None and not timeout > 0:
        raise InvalidArgumentError("rt.update", "timeout", f"must be > 0 seconds (or None to wait), got {timeout!r}")
    retry = update_id is not None
    if update_id is None:
        update_id = uuid.uuid4().hex
    elif not isinstance(update_id, str) or not update_id:
        raise InvalidArgumentError("rt.update", "update_id", f"must be a non-empty string, got {update_id!r}")
    record = await store.get_run(run_id)
    if record is None:
        raise RunNotFoundError(run_id)
    if retry:
        found = await _recorded(store, run_id, update_id)
        if found is not None:
            return _answer(run_id, name, found)
    action = f"send update {name!r} to"
    if record.status.finished:
        await inbox.check_stored(store, run_id, action)  # raises RunAlreadyFinishedError
    _validate(registry, record, name, update_id, payload)
    fut = waiters.wait(run_id, update_id)
    try:
        pending = retry and any(
            type(m) is UpdateMessage and m.update_id == update_id for _, m in await store.get_inbox(run_id)
        )
        if not pending:
            message = UpdateMessage(update_id=update_id, name=name, payload=payload, ts=clock.time())
            seq = await inbox.append(store, run_id, message, action)
            await inbox.deliver(runs, run_id, seq, message)
        got = await _wait(store, clock, runs, fut, run_id, name, update_id, timeout)
    finally:
        waiters.forget(run_id, update_id, fut)
    if isinstance(got, RunRecord):
        # The run ended: it may still have answered in its last checkpoint.
        found = await _recorded(store, run_id, update_id)
        if found is None:
            raise UpdateNotAnsweredError(run_id, name, update_id, got.status.value)
        got = found
    return _answer(run_id, name, got)


def _validate(registry: Registry, record: RunRecord, name: str, update_id: str, payload: Any) -> None:
    """The workflow's validator for ``name``, if this runtime registers the run's workflow."""
    if record.workflow not in registry:
        return  # a client of another process's runs: that process's runs check what they take
    try:
        wf = registry.lookup(record.workflow, run_id=record.run_id, version=record.version)
    except WaylineError:
        return
    if isinstance(wf, AslWorkflow):
        raise UpdateRejectedError(
            record.run_id, name, update_id, "NotSupported", "a state machine's run takes no updates (signal it instead)"
        )
    check = getattr(wf, "validators", {}).get(name)
    if check is None:
        return
    try:
        check(payload)
    except Exception as exc:
        raise UpdateRejectedError(record.run_id, name, update_id, type(exc).__name__, str(exc) or None) from exc


async def _wait(
    store: Store,
    clock: Clock,
    runs: Mailboxes,
    fut: asyncio.Future[UpdateAnswered | RunRecord],
    run_id: str,
    name: str,
    update_id: str,
    timeout: float | None,  # noqa: ASYNC109 - on the runtime's clock
) -> UpdateAnswered | RunRecord:
    """The answer (or the run's final record), waiting at most ``timeout`` seconds of the
    runtime's clock. A run not in memory here is owned by another process (or has ended):
    its answer is looked for in the store as well."""
    deadline = None if timeout is None else clock.time() + timeout
    while True:
        step = POLL_INTERVAL if runs.live(run_id) is None else None
        left = None if deadline is None else deadline - clock.time()
        if left is not None and left <= 0:
            raise UpdateTimeoutError(run_id, name, update_id, timeout or 0.0)
        wait_for = left if step is None else (step if left is None else min(step, left))
        if wait_for is None:
            return await fut
        timer: asyncio.Future[Any] = asyncio.ensure_future(clock.sleep(wait_for))
        try:
            await asyncio.wait({fut, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
        if fut.done():
            return fut.result()
        if step is not None:
            found = await _recorded(store, run_id, update_id)
            if found is not None:
                return found
            rec = await store.get_run(run_id)
            if rec is None:
                raise RunNotFoundError(run_id)
            if rec.status.finished:
                return rec


async def _recorded(store: Store, run_id: str, update_id: str) -> UpdateAnswered | None:
    """The answer to ``update_id`` recorded in the run's history, if any."""
    for ev in await store.get_history(run_id):
        if type(ev) is UpdateAnswered and ev.update_id == update_id:
            return ev
    return None


def _answer(run_id: str, name: str, event: UpdateAnswered) -> Any:
    if event.error is not None:
        raise UpdateRejectedError(run_id, name, event.update_id, event.error, event.cause)
    return event.result



