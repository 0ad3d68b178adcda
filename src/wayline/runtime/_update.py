"""`Update`: an ``rt.update`` request as the workflow body that took it sees it."""

from __future__ import annotations

from typing import Any

from .._errors import InvalidArgumentError
from ._commands import ReplyUpdate


class Update:
    """An update the run took with ``await ctx.wait_update(name)``; answer it once with
    ``await upd.reply(value)`` or ``await upd.reject(error)``.

    The answer is journaled before ``rt.update`` returns it, so it is given once: a caller
    that retries with the same ``update_id`` (after a timeout or a crash) gets it again, and
    a run restarted between taking the update and replying takes the same update again.

    Attributes:
        name: the update's name; ``payload`` what the caller sent; ``update_id`` its id.
    """

    __slots__ = ("name", "payload", "update_id")

    def __init__(self, update_id: str, name: str, payload: Any) -> None:
        self.update_id = update_id
        self.name = name
        self.payload = payload

    def reply(self, value: Any = None) -> ReplyUpdate:
        """Answer with ``value`` (stored data): what ``rt.update`` returns."""
        return ReplyUpdate(self.update_id, self.name, value, None, None)

    def reject(self, error: str | BaseException, cause: str | None = None) -> ReplyUpdate:
        """Refuse the update: ``rt.update`` raises `UpdateRejectedError` with ``error`` (a
        name, or an exception whose type and message are used) and ``cause``."""
        if isinstance(error, BaseException):
            name, cause = type(error).__name__, cause if cause is not None else str(error)
        elif isinstance(error, str) and error:
            name = error
        else:
            raise InvalidArgumentError("upd.reject", "error", f"must be an error name or an exception, got {error!r}")
        return ReplyUpdate(self.update_id, self.name, None, name, cause)

    def __repr__(self) -> str:
        return f"<Update {self.name!r} {self.update_id}>"
