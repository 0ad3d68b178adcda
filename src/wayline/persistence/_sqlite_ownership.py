"""Ownership of a SQLite database: the one runtime that runs its runs.

The lock is an exclusive ``flock`` on the database file itself, so it belongs to the file's
identity (device and inode), not to a name: the same file reached through a symlink, a bind
mount or a renamed directory meets the same lock, and no ``.owner`` file is left beside the
database. The kernel drops the lock when the process dies, even by SIGKILL.

flock and the POSIX (``fcntl``) locks SQLite takes are independent on Linux and macOS, but
closing *any* descriptor of a file drops every POSIX lock the process holds on it, SQLite's
included. So the descriptor the lock is taken on is opened once per file and process, and
closed only when the last store of this process on that file has closed its connections.
"""

from __future__ import annotations

import os
import threading

from .._errors import DatabaseOwnedError

#: A file's identity: (device, inode).
Identity = tuple[int, int]


def identity_of(path: str) -> Identity:
    st = os.stat(path)
    return (st.st_dev, st.st_ino)


class _File:
    """This process's use of one database file."""

    __slots__ = ("fd", "legacy_fd", "owner", "shm_fd", "users")

    def __init__(self) -> None:
        self.fd: int | None = None  # opened at the first claim, closed with the last user
        self.shm_fd: int | None = None  # the -shm file, read by the WAL check; likewise
        self.legacy_fd: int | None = None
        self.owner: object | None = None
        self.users = 0


_files: dict[Identity, _File] = {}
_guard = threading.Lock()  # stores may open and close on several event loops' threads


class Ownership:
    """One store's use of its database file: `attach` when its connections are open, `claim`
    to own the database, `detach` once its connections are closed."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.real = os.path.realpath(path)  # the file SQLite opens: symlinks resolved
        self.identity: Identity | None = None
        self.owner = False

    def attach(self, identity: Identity) -> None:
        self.real = os.path.realpath(self.path)
        with _guard:
            _files.setdefault(identity, _File()).users += 1
        self.identity = identity

    def shm_header(self) -> bytes | None:
        """The first 96 bytes of the database's ``-shm`` file (the wal-index header), read
        through a descriptor kept until the last store of this process on the file closes:
        the -shm file carries SQLite's locks, which closing a descriptor would drop."""
        assert self.identity is not None, "attach before reading"
        if not hasattr(os, "pread"):  # not POSIX: the WAL check walks the whole log instead
            return None
        with _guard:
            file = _files[self.identity]
            if file.shm_fd is None:
                try:
                    file.shm_fd = os.open(f"{self.real}-shm", os.O_RDONLY)
                except OSError:
                    return None
            return os.pread(file.shm_fd, 96, 0)

    def claim(self) -> None:
        """Raises:
        DatabaseOwnedError: another runtime, in this process or another, owns the file."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not on POSIX: no guard
            return
        assert self.identity is not None, "attach before claiming"
        with _guard:
            file = _files[self.identity]
            if file.owner is not None:
                raise DatabaseOwnedError(self.path)
            if file.fd is None:
                fd = os.open(self.real, os.O_RDONLY)
                st = os.fstat(fd)
                if (st.st_dev, st.st_ino) != self.identity:  # replaced since it was opened
                    os.close(fd)  # another file: closing it drops none of SQLite's locks
                    raise DatabaseOwnedError(self.path)
                file.fd = fd
            try:
                fcntl.flock(file.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise DatabaseOwnedError(self.path) from None
            try:
                file.legacy_fd = _claim_legacy_lock(self.path)
            except DatabaseOwnedError:
                fcntl.flock(file.fd, fcntl.LOCK_UN)
                raise
            file.owner = self
        self.owner = True

    def detach(self) -> None:
        """Give up ownership (if held) and this store's use of the file."""
        identity, self.identity = self.identity, None
        if identity is None:
            return
        with _guard:
            file = _files[identity]
            if self.owner:
                self.owner = False
                file.owner = None
                if file.legacy_fd is not None:
                    os.close(file.legacy_fd)  # a lock file of its own: closing it drops nothing else
                    file.legacy_fd = None
                if file.fd is not None:
                    import fcntl

                    fcntl.flock(file.fd, fcntl.LOCK_UN)
            file.users -= 1
            if file.users == 0:
                del _files[identity]
                for fd in (file.fd, file.shm_fd):
                    if fd is not None:
                        os.close(fd)


def _claim_legacy_lock(path: str) -> int | None:
    """Also hold the ``<path>.owner`` lock file that older wayline versions used, if it exists,
    so that an older wayline is kept off the database as before. It is never created: delete
    it once no older wayline opens the database."""
    import fcntl

    legacy = os.path.realpath(path) + ".owner"
    try:
        fd = os.open(legacy, os.O_RDWR)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise DatabaseOwnedError(path) from None
    return fd


def file_gone(path: str, identity: Identity) -> str | None:
    """How ``path`` stopped naming the file with ``identity``: ``"deleted"`` (or moved away:
    either way a restart would not find it, nor its -wal file under the name that goes with
    it), ``"replaced by another file"``, or None while it still names it. One stat: cheap
    enough for every commit."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "deleted"
    except OSError:
        return None  # cannot tell (permissions, say): SQLite's own errors will say more
    if (st.st_dev, st.st_ino) != identity:
        return "replaced by another file"
    return None


def readable_copy(path: str) -> str | None:
    """Where the deleted file ``path`` can still be read while this process lives: one of
    the process's own descriptors of it, under ``/proc/<pid>/fd`` (Linux only)."""
    gone = os.path.realpath(path) + " (deleted)"
    try:
        descriptors = os.listdir("/proc/self/fd")
    except OSError:
        return None
    for fd in descriptors:
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == gone:
                return f"/proc/{os.getpid()}/fd/{fd}"
        except OSError:
            continue
    return None


def lock_holder(path: str) -> int | None:
    """The pid of the process that owns the database at ``path`` (holds its flock), or None
    if no process does.

    Read from ``/proc/locks``, so nothing is locked to find out (a probe with flock would make
    a worker starting at that moment fail with `DatabaseOwnedError`). The kernel lists there
    the locks of processes in the reader's PID namespace: a process in another container that
    shares the file is not seen.

    Raises:
        OSError: ``path`` cannot be read, or ``/proc/locks`` does not exist (not Linux): who
            holds the lock cannot be told.
    """
    st = os.stat(path)
    # Lines like "3: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF"; the devices are in hex.
    # A waiter's line reads "3: -> FLOCK ..." and is not a holder.
    wanted = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    with open("/proc/locks", encoding="ascii", errors="replace") as locks:
        for line in locks:
            fields = line.split()
            if len(fields) >= 6 and fields[1] == "FLOCK" and fields[3] == "WRITE" and fields[5] == wanted:
                pid = int(fields[4])
                if pid > 0:
                    return pid
    return None
