"""Ownership of a SQLite database: the one runtime that runs its runs."""

from __future__ import annotations

import os

from .._errors import DatabaseOwnedError


class Ownership:
    """An advisory lock on ``<path>.owner`` (flock: the kernel drops it when the process
    dies, even by SIGKILL), held from `claim` until `release`."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def claim(self) -> None:
        """Raises:
        DatabaseOwnedError: another runtime holds it."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not on POSIX: no guard
            return
        # The real path: the same file reached through a symlink must meet the same lock.
        fd = os.open(os.path.realpath(self.path) + ".owner", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise DatabaseOwnedError(self.path) from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the descriptor drops its flock
