"""The one way a message from outside reaches a run: the durable inbox, then the mailbox.

Signals, cancel requests, callback answers (completions, failures, heartbeats) and the ends
of a code workflow's child runs are all
committed to the run's inbox before the call that sends them returns; then they are told to
the run's actor, or, if the run is not in memory, the run is loaded and reads its inbox. The
checkpoint that applies a message deletes it in the same transaction, and a run applies each
inbox message once (by its sequence number), so a message that reaches a run twice (sent
here, and found again by the poller or after a restart) changes nothing the second time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from .._errors import (
    CallbackTokenError,
    RunAlreadyFinishedError,
    RunNotFoundError,
    StoreError,
)
from .._tokens import digest_token, token_run_id
from ..actors import ActorStoppedError, Clock
from ..persistence import (
    CallbackBeat,
    CallbackCompleted,
    CallbackCompletion,
    CallbackFailed,
    CallbackFailure,
    CallbackMessage,
    CallbackWait,
    CancelMessage,
    InboxMessage,
    RunStatus,
    SignalMessage,
    Store,
    UnreadableMessage,
)
from ._port import LiveRun
from .run import Inbound

log = logging.getLogger("wayline.inbox")


class Mailboxes(Protocol):
    """The runs of a runtime, as the inbox reaches them."""

    def check_open(self) -> None:
        """Raise ``RuntimeClosedError`` if the runtime has closed."""
        ...

    def live(self, run_id: str) -> LiveRun | None:
        """The run's actor, if the run is in memory."""
        ...

    async def wake(self, run_id: str, reason: str) -> None:
        """Load the run (it left memory while waiting), if it has not ended."""
        ...

    def took_in(self, run_id: str, seq: int) -> bool:
        """Whether the run left memory having taken in message ``seq`` (a signal it keeps in
        its inbox for a later wait, or one it applied)."""
        ...


async def check_unfinished(store: Store, runs: Mailboxes, run_id: str, action: str) -> None:
    """Raise unless the run exists and has not ended. A run in memory is known to be
    unfinished, so only others cost a read."""
    runs.check_open()
    if runs.live(run_id) is not None:
        return
    await check_stored(store, run_id, action)


async def check_stored(store: Store, run_id: str, action: str) -> None:
    """Raise unless the stored run exists and has not ended."""
    rec = await store.get_run(run_id)
    if rec is None:
        raise RunNotFoundError(run_id)
    if rec.status.finished:
        raise RunAlreadyFinishedError(run_id, rec.status.value, action)


async def append(store: Store, run_id: str, message: InboxMessage, action: str) -> int:
    """Commit ``message`` for a run; the store refuses it if the run ended in the meantime
    (its final checkpoint committed after the check)."""
    seq = await store.append_inbox(run_id, message)
    if seq is None:
        # The store, not the table of live runs: the run's actor may not have stopped yet.
        await check_stored(store, run_id, action)
        raise StoreError(f"the store refused a message for run {run_id!r}, which has not ended")
    return seq


async def deliver(runs: Mailboxes, run_id: str, seq: int, message: InboxMessage) -> None:
    """Hand committed message ``seq`` to the run: to its actor, or by loading it."""
    live = runs.live(run_id)
    if live is None:
        if runs.took_in(run_id, seq):
            # Found again by the poller after the run left memory with it: a signal kept for
            # a later wait stays in the inbox, and must not reload the run each time.
            return
        await runs.wake(run_id, "woken by a message")  # not in memory: it reads its inbox
        return
    try:
        live.ref.tell(Inbound(seq, message))
    except ActorStoppedError:
        # Stopping (passivating or ending): the inbox keeps it for the next incarnation.
        await runs.wake(run_id, "woken by a message")


async def signal(store: Store, clock: Clock, runs: Mailboxes, run_id: str, name: str, payload: Any) -> None:
    """Signal a run (see ``Runtime.signal``)."""
    action = f"signal {name!r} to"
    await check_unfinished(store, runs, run_id, action)
    message = SignalMessage(name=name, payload=payload, ts=clock.time())
    seq = await append(store, run_id, message, action)
    await deliver(runs, run_id, seq, message)


async def cancel(
    store: Store, clock: Clock, runs: Mailboxes, run_id: str, reason: str | None, *, terminate: bool = False
) -> None:
    """Cancel a run, and return once the run has applied the cancel (see ``Runtime.cancel``)."""
    await check_unfinished(store, runs, run_id, "cancel")
    # Committed before it is delivered: a crash from here on cannot lose the request.
    message = CancelMessage(reason=reason, ts=clock.time(), terminate=terminate)
    seq = await append(store, run_id, message, "cancel")
    live = runs.live(run_id)
    if live is None:
        await runs.wake(run_id, "woken by a message")  # it applies the cancel on load
        return
    try:
        await live.ref.ask(Inbound(seq, message))
    except ActorStoppedError:
        # The run ended first (the interrupt itself may have ended it): fine if it ended
        # cancelled, otherwise the cancel came too late.
        ended = await store.get_run(run_id)
        if ended is not None and ended.status is not RunStatus.CANCELLED:
            raise RunAlreadyFinishedError(run_id, ended.status.value, "cancel") from None


class Inbox:
    """Signals, cancels and callback answers for the runs of one runtime."""

    def __init__(self, store: Store, clock: Clock, runs: Mailboxes) -> None:
        self._store = store
        self._clock = clock
        self._runs = runs
        self._claims: set[str] = set()  # final callback answers being committed right now
        self._poked = asyncio.Event()  # a message was committed somewhere: read the inbox now

    def poke(self) -> None:
        """Have the poller read the inbox now rather than at its next beat (the store
        notified a commit: another worker's or a client's message, or a client's new run)."""
        self._poked.set()

    async def signal(self, run_id: str, name: str, payload: Any) -> None:
        await signal(self._store, self._clock, self._runs, run_id, name, payload)

    async def cancel(self, run_id: str, reason: str | None) -> None:
        await cancel(self._store, self._clock, self._runs, run_id, reason)

    async def complete(self, token: str, output: Any) -> None:
        await self._answer(token, lambda digest, ts: CallbackCompletion(digest=digest, output=output, ts=ts))

    async def fail(self, token: str, error: str, cause: str | None) -> None:
        await self._answer(token, lambda digest, ts: CallbackFailure(digest=digest, error=error, cause=cause, ts=ts))

    async def heartbeat(self, token: str) -> None:
        await self._answer(token, lambda digest, ts: CallbackBeat(digest=digest, ts=ts))

    async def _answer(self, token: str, make: Any) -> None:
        self._runs.check_open()
        run_id = token_run_id(token)
        if run_id is None:
            raise CallbackTokenError(
                "this is not a wayline callback token (they look like 'wlcb1.<run>.<secret>', as "
                "ctx.wait_for_callback and $$.Task.Token hand them out)"
            )
        digest = digest_token(token)
        message: CallbackMessage = make(digest, self._clock.time())
        final = type(message) is not CallbackBeat
        if final and digest in self._claims:
            raise CallbackTokenError("this token's callback has already been completed", run_id)
        live = self._runs.live(run_id)
        if live is not None and live.loaded:
            reason = live.callback_refusal(digest)
        else:
            reason = await self._stored_refusal(run_id, digest)
        if reason is not None:
            raise CallbackTokenError(reason, run_id)
        if final:
            self._claims.add(digest)
        try:
            seq = await self._store.append_inbox(run_id, message)
        finally:
            self._claims.discard(digest)
        if seq is None:  # the run ended while the message was being committed
            raise CallbackTokenError(await self._stored_refusal(run_id, digest) or "its run has ended", run_id)
        await deliver(self._runs, run_id, seq, message)

    async def _stored_refusal(self, run_id: str, digest: str) -> str | None:
        """Why a run not in memory here does not accept token ``digest`` (None if it does)."""
        store = self._store
        # The inbox before the run: a run takes a message out of its inbox in the commit that
        # applies it, so an answer is seen in one or the other. Read the other way round, an
        # answer applied between the two reads was in neither, and a used token was accepted.
        inbox = await store.get_inbox(run_id)
        rec = await store.get_run(run_id)
        if rec is None:
            return f"its run {run_id!r} does not exist"
        if not rec.status.finished and any(type(w) is CallbackWait and digest in w.digests for w in rec.waits):
            for _, msg in inbox:
                if isinstance(msg, CallbackMessage) and msg.digest == digest and type(msg) is not CallbackBeat:
                    return "this token's callback has already been completed (the run has not applied it yet)"
            return None
        ended = f"; its run {run_id!r} has ended ({rec.status.value})" if rec.status.finished else ""
        for ev in [*(await store.get_history(run_id)), *rec.tail]:
            if isinstance(ev, (CallbackCompleted, CallbackFailed)) and ev.token_hash == digest:
                if isinstance(ev, CallbackFailed) and ev.error in ("States.Timeout", "States.HeartbeatTimeout"):
                    return f"this token's callback timed out ({ev.error}){ended}"
                return f"this token's callback has already been completed{ended}"
        if ended:
            return ended[2:].replace("its run", "the token's run", 1)
        return f"run {run_id!r} is not waiting on this token (it was never issued, or it was already used)"

    async def poll(self, interval: float, also: Callable[[], Awaitable[None]] | None = None) -> None:
        """Deliver the messages other processes (the CLI, other replicas) commit to the inbox.

        Messages sent through this runtime are found here too; a run applies each message
        once, so both ways are safe. ``also`` runs on every beat, after the messages (the
        events a crash or another process left undispatched): one task, one rhythm.
        """
        store = self._store
        last = 0
        rows = await store.inbox_since(0, limit=1)
        if rows:
            last = rows[0][0] - 1
        while True:
            try:
                rows = await store.inbox_since(last)
            except StoreError as exc:  # the store is out for a while: read again next time
                log.warning("the inbox could not be read (%s); trying again in %gs", exc, interval)
                rows = []
            for seq, run_id, message in rows:
                last = seq
                if type(message) is UnreadableMessage:
                    continue  # set aside (and logged) by the store
                try:
                    await deliver(self._runs, run_id, seq, message)
                except Exception as exc:
                    # One message that cannot be delivered (its run cannot be loaded, say)
                    # must not stop the others: set it aside, once; the run finds it in its
                    # inbox when it next loads.
                    log.error(
                        "inbox message %s for run %r could not be delivered and is set aside (%s: %s); "
                        "other runs' messages go on being delivered",
                        seq,
                        run_id,
                        type(exc).__name__,
                        exc,
                    )
            if also is not None:
                try:
                    await also()
                except Exception:
                    log.exception("a periodic inbox task failed; it runs again on the next beat")
            if not self._poked.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._poked.wait(), interval)
            self._poked.clear()
