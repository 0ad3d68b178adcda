"""Actors: one asyncio task per actor, processing its mailbox one message at a time.

Nothing but the actor's own task touches its state, so every message is applied atomically
with respect to every other message, without locks. A mailbox is a deque plus one future the
idle actor waits on: cheaper than ``asyncio.Queue`` and enough for a single consumer, which
matters at 100,000 live actors.

An actor that sets ``parks = True`` holds a task only while it has work: when its mailbox is
empty it parks (its task ends, its state stays), and the next message starts a new task for
it, as Erlang processes and Akka actors share schedulers rather than each holding a thread.
A waiting actor is then just its state and an empty mailbox: no task, coroutine frame,
future or context, which is most of what a waiting run used to cost.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, Generic, Protocol, TypeVar

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

    #: Park when the mailbox is empty (end the task, keep the state) instead of waiting on it
    #: in a task; the supervisor starts a task again at the next message. ``on_start`` still
    #: runs once per incarnation and ``on_stop`` once at its end, not at each park.
    parks: bool = False
    _started: bool = False  # this incarnation's on_start has run (a parking actor resumes)

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
        parked = False
        try:
            if not self._started:
                self._started = True
                await self.on_start()
            mailbox = ref._mailbox
            assert mailbox is not None, "an actor is started or resumed with a mailbox"
            while not ref._stopping:
                if not mailbox:
                    if self.parks:
                        # Ending the task with the stop flag down is what parks the actor:
                        # its supervisor keeps it, and the next tell starts a task again.
                        parked = True
                        ref._resting = self
                        ref._mailbox = None
                        return
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
            if not parked:
                await self.on_stop(error)

    async def _stop_parked(self) -> None:
        """End a parked incarnation that is being shut down, as a cancelled task ends one that
        waits on its mailbox: `on_stop` with the cancellation, then the cancellation itself."""
        error = asyncio.CancelledError()
        await self.on_stop(error)
        raise error


class Parked(Protocol):
    """What a parked actor's ref holds: the supervisor's record of it, which starts a task for
    it again."""

    def resume(self) -> None: ...


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

    __slots__ = ("_hook", "_mailbox", "_parked", "_resting", "_stopped", "_stopping", "_waiter", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        # Told messages as they are, asks as _Ask. A parked actor's empty mailbox is dropped
        # (an empty deque is 760 bytes): the next message makes a new one.
        self._mailbox: deque[Any] | None = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._hook: Callable[[Any], None] | None = None
        self._stopping = False
        self._stopped = False
        # Set while the actor is parked: what its next message wakes (see `Actor.parks`).
        self._parked: Parked | None = None
        # The parked incarnation itself, held by its ref alone while it has no task (so an
        # ended one is freed by reference counting, with nothing else holding it).
        self._resting: Actor[M] | None = None

    def __repr__(self) -> str:
        return f"<ActorRef {self.name!r}>"

    @property
    def alive(self) -> bool:
        return not self._stopped

    @property
    def mailbox_depth(self) -> int:
        mailbox = self._mailbox
        return 0 if mailbox is None else len(mailbox)

    def queued(self) -> list[Any]:
        """The messages waiting in the mailbox, oldest first (a snapshot)."""
        return [message_of(item) for item in self._mailbox or ()]

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
        mailbox = self._mailbox
        if mailbox is None:
            mailbox = self._mailbox = deque()
        mailbox.append(message)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        parked = self._parked
        if parked is not None:
            self._parked = None
            parked.resume()
        if self._hook is not None:
            self._hook(message)

    async def ask(self, message: M) -> Any:
        """Queue ``message`` and wait for the actor's reply (or its exception)."""
        if self._stopped:
            raise ActorStoppedError(self.name)
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        mailbox = self._mailbox
        if mailbox is None:
            mailbox = self._mailbox = deque()
        mailbox.append(_Ask(message, reply))
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        parked = self._parked
        if parked is not None:
            self._parked = None
            parked.resume()
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
        self._parked = self._resting = None
        mailbox = self._mailbox
        while mailbox:
            fail(mailbox.popleft(), ActorStoppedError(self.name), self.name)


def run_actor(actor: Actor[Any]) -> Coroutine[Any, Any, None]:
    """Run one incarnation of ``actor`` until it stops (returns) or crashes (raises).

    A message whose handler raises is answered with the exception (for an ``ask``) and then
    crashes the actor: the supervisor, not the handler, decides what happens next. Returns
    the actor's own loop (`Actor._main`) as the coroutine to run, adding no frame to it.
    """
    return actor._main()
