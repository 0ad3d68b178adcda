"""What a workflow body awaits. Each is an awaitable that yields itself to the run actor.

The actor drives the workflow coroutine with ``send``/``throw``: a yielded command is a
request ("run this step", "sleep until t"), and the value sent back is its outcome. This is
the "pure decisions, then effects" split: the body decides, the actor performs and records.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Generic, TypeVar

import msgspec

from .._errors import SignalPayloadError
from ..persistence import secret_dec_hook
from ._definitions import ActivityDef

T = TypeVar("T")

#: The journal name of a durable sleep (the step name its StepSucceeded event carries).
SLEEP_STEP = "wayline.sleep"


class Command(Generic[T]):
    __slots__ = ()

    def __await__(self) -> Generator[Any, Any, T]:
        result: T = yield self
        return result


class Step(Command[T]):
    """Run one activity attempt sequence (with its retries) as journal entry #index."""

    __slots__ = ("activity", "args", "kwargs")

    def __init__(self, activity: ActivityDef[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.activity = activity
        self.args = args
        self.kwargs = kwargs


class Gather(Command[list[Any]]):
    """Run several steps concurrently; results in order.

    With ``tolerated`` (a failure budget, as a count), failed items yield an error dict
    instead of failing the whole gather, up to that many failures.
    """

    __slots__ = ("max_concurrency", "steps", "tolerated")

    def __init__(self, steps: tuple[Step[Any], ...], *, max_concurrency: int | None, tolerated: int) -> None:
        self.steps = steps
        self.max_concurrency = max_concurrency
        self.tolerated = tolerated


class Sleep(Command[None]):
    """A durable timer: resume at ``until`` (epoch seconds), even across restarts."""

    __slots__ = ("until",)

    def __init__(self, until: float) -> None:
        self.until = until


class WaitSignal(Command[Any]):
    """Wait for the next signal called ``name`` (journaled: a replay returns the same one)."""

    __slots__ = ("name", "timeout")

    def __init__(self, name: str, timeout: float | None) -> None:
        self.name = name
        self.timeout = timeout


class Decoded(Generic[T]):
    """A command whose outcome is decoded as ``type`` (``ctx.wait_signal(name, T)``): msgspec's
    conversion, as for a workflow's input. Not a command itself: it awaits ``command``."""

    __slots__ = ("command", "run_id", "type")

    def __init__(self, command: WaitSignal, type: type[T], run_id: str) -> None:
        self.command = command
        self.type = type
        self.run_id = run_id

    def __await__(self) -> Generator[Any, Any, T]:
        payload = yield from self.command.__await__()
        try:
            converted: T = msgspec.convert(payload, self.type, strict=False, dec_hook=secret_dec_hook)
        except msgspec.ValidationError as exc:
            expected = getattr(self.type, "__name__", None) or repr(self.type)
            raise SignalPayloadError(self.run_id, self.command.name, expected, str(exc)) from None
        return converted


class OpenCallback(Command[tuple[int, str | None]]):
    """Register a callback wait (journal entry #index) and make its token: ``(index, token)``.

    The token is None when a replay finds the sender already journaled (no one needs it)."""

    __slots__ = ("heartbeat", "step", "timeout")

    def __init__(self, step: str, timeout: float | None, heartbeat: float | None) -> None:
        self.step = step
        self.timeout = timeout
        self.heartbeat = heartbeat


class AwaitCallback(Command[Any]):
    """Block until the callback opened as entry ``index`` is completed, failed or timed out."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index


class CloseCallback(Command[None]):
    """Drop the callback wait ``index`` (its sender failed: nobody holds the token)."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index


CALLBACK_COMMANDS = (OpenCallback, AwaitCallback, CloseCallback)


#: What happens to a child run still going when its parent ends (``parent_close=``):
#: "terminate" ends it cancelled at once, "request_cancel" cancels it (its body gets the
#: cancellation and may clean up), "abandon" leaves it running.
PARENT_CLOSE = ("terminate", "request_cancel", "abandon")


class StartChild(Command[tuple[int, str]]):
    """Start (or, on replay, find) a child run of ``workflow`` as journal entry #index:
    ``(index, child run id)``. ``run_id`` None: the parent's id and the position."""

    __slots__ = ("close", "input", "run_id", "workflow")

    def __init__(self, workflow: str, input: Any, run_id: str | None, close: str) -> None:
        self.workflow = workflow
        self.input = input
        self.run_id = run_id
        self.close = close


class AwaitChild(Command[T]):
    """Block until child run ``run_id`` ends: its output, or `RunFailed` / `RunCancelled`."""

    __slots__ = ("run_id",)

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id


class MessageChild(Command[None]):
    """Send child run ``run_id`` a signal (``kind`` "signal") or a cancel (``kind`` "cancel")."""

    __slots__ = ("kind", "name", "payload", "run_id")

    def __init__(self, run_id: str, kind: str, name: str | None, payload: Any) -> None:
        self.run_id = run_id
        self.kind = kind
        self.name = name
        self.payload = payload


CHILD_COMMANDS = (StartChild, AwaitChild, MessageChild)


class WaitUpdate(Command[tuple[str, Any]]):
    """Wait for the next update called ``name`` (journaled): ``(update id, payload)``."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


class ReplyUpdate(Command[None]):
    """Answer update ``update_id``: ``result``, or a rejection (``error`` set)."""

    __slots__ = ("cause", "error", "name", "result", "update_id")

    def __init__(self, update_id: str, name: str, result: Any, error: str | None, cause: str | None) -> None:
        self.update_id = update_id
        self.name = name
        self.result = result
        self.error = error
        self.cause = cause
