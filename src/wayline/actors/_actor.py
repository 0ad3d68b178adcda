"""Actors: one asyncio task per actor, processing its mailbox one message at a time.

Nothing but the actor's own task touches its state, so every message is applied atomically
with respect to every other message, without locks. A mailbox is a deque plus one future the
idle actor waits on: cheaper than ``asyncio.Queue`` and enough for a single consumer, which
matters at 100,000 live actors.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

from .._errors import WaylineError

M = TypeVar("M")


class ActorStoppedError(WaylineError):
    """A message was sent to an actor that has stopped."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"actor {name!r} has stopped and takes no more messages")


class Actor(Generic[M]):
    """Base class: override `receive`, and the lifecycle hooks if needed.

    The hooks run in the actor's own task: ``on_start`` before the first message (a failure
    there is a crash like any other), ``on_stop`` after the last, with the exception that
    ended the actor or ``None``.
    """

    ref: ActorRef[M]

    async def on_start(self) -> None:
        """Called once per incarnation, before the first message."""

    async def receive(self, message: M) -> Any:
        """Handle one message; the return value answers an `ActorRef.ask`."""
        raise NotImplementedError

    async def on_stop(self, error: BaseException | None) -> None:
        """Called once per incarnation when it ends, normally (``None``) or by ``error``."""

    def stop(self) -> None:
        """Ask this actor to end after the current message (a normal exit, not restarted)."""
        self.ref._stopping = True

    async def _main(self) -> None:
        """One incarnation: `on_start`, then each message through `receive` until the actor
        stops or a handler raises, then `on_stop`."""
        ref = self.ref
        error: BaseException | None = None
        try:
            await self.on_start()
            mailbox = ref._mailbox
            while not ref._stopping:
                if not mailbox:
                    # A plain future, not a coroutine: an idle actor waits holding no frame
                    # of ours but this one (with 100,000 live actors, frames are memory).
                    await ref._mail()
                    continue
                item = mailbox.popleft()
                try:
                    result = await self.receive(message_of(item))
                except BaseException as exc:
                    fail(item, exc, ref.name)
                    raise
                answer(item, result)
        except BaseException as exc:
            error = exc
            raise
        finally:
            await self.on_stop(error)


class _Ask:
    """An `ActorRef.ask` in the mailbox: the message and the future for its reply. A `tell`
    is queued as the bare message, with no wrapper object."""

    __slots__ = ("message", "reply")

    def __init__(self, message: Any, reply: asyncio.Future[Any]) -> None:
        self.message = message
        self.reply = reply


def message_of(item: Any) -> Any:
    """The message of a mailbox item (a bare told message, or an ask)."""
    return item.message if type(item) is _Ask else item


def answer(item: Any, result: Any) -> None:
    """Reply to a mailbox item if it is an ask (a no-op for a told message)."""
    if type(item) is _Ask and not item.reply.done():
        item.reply.set_result(result)


def fail(item: Any, exc: BaseException, actor: str) -> None:
    """Answer a mailbox item that is an ask with the exception its handler raised."""
    if type(item) is _Ask and not item.reply.done():
        item.reply.set_exception(exc if isinstance(exc, Exception) else ActorStoppedError(actor))


class ActorRef(Generic[M]):
    """The address of an actor: send it messages with `tell` (fire and forget) or `ask`.

    The ref outlives restarts: a supervisor gives the new incarnation the same ref and
    mailbox, so senders never hold a stale address.
    """

    __slots__ = ("_hook", "_mailbox", "_stopped", "_stopping", "_waiter", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._mailbox: deque[Any] = deque()  # told messages as they are, asks as _Ask
        self._waiter: asyncio.Future[None] | None = None
        self._hook: Callable[[Any], None] | None = None
        self._stopping = False
        self._stopped = False

    def __repr__(self) -> str:
        return f"<ActorRef {self.name!r}>"

    @property
    def alive(self) -> bool:
        return not self._stopped

    @property
    def mailbox_depth(self) -> int:
        return len(self._mailbox)

    def queued(self) -> list[Any]:
        """The messages waiting in the mailbox, oldest first (a snapshot)."""
        return [message_of(item) for item in self._mailbox]

    def set_mail_hook(self, hook: Callable[[Any], None] | None) -> None:
        """Have ``hook(message)`` called as each message is queued (None: no more).

        For an actor that must hear of some messages before their turn, while it is busy
        with another (to interrupt that work): the hook runs in the sender's context, so it
        must only look at the message and signal the actor, never handle it.
        """
        self._hook = hook

    def tell(self, message: M) -> None:
        """Queue ``message``; returns at once."""
        if self._stopped:
            raise ActorStoppedError(self.name)
        self._mailbox.append(message)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self._hook is not None:
            self._hook(message)

    async def ask(self, message: M) -> Any:
        """Queue ``message`` and wait for the actor's reply (or its exception)."""
        if self._stopped:
            raise ActorStoppedError(self.name)
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._mailbox.append(_Ask(message, reply))
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self._hook is not None:
            self._hook(message)
        return await reply

    def _mail(self) -> asyncio.Future[None]:
        """A future the next `tell` or `ask` resolves: await it while the mailbox is empty."""
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        return waiter

    def _close(self, error: BaseException | None) -> None:
        """Mark stopped and fail every pending ask, so no caller waits forever."""
        self._stopped = True
        while self._mailbox:
            fail(self._mailbox.popleft(), ActorStoppedError(self.name), self.name)


def run_actor(actor: Actor[Any]) -> Coroutine[Any, Any, None]:
    """Run one incarnation of ``actor`` until it stops (returns) or crashes (raises).

    A message whose handler raises is answered with the exception (for an ``ask``) and then
    crashes the actor: the supervisor, not the handler, decides what happens next. Returns
    the actor's own loop (`Actor._main`) as the coroutine to run, adding no frame to it.
    """
    return actor._main()
