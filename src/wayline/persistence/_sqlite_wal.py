"""Telling a torn write-ahead log from a damaged one, before SQLite silently drops data.

SQLite's WAL (https://www.sqlite.org/fileformat2.html#walformat) is a 32-byte header and then
frames: a 24-byte frame header (page number; for the last frame of a transaction, the
database size, else 0; the header's two salts; a running checksum) and one page. A frame is
valid when its salts equal the header's and its checksum, computed over its first 8 header
bytes and its page, seeded with the previous frame's checksum (the header's for the first),
matches. When it opens a WAL, SQLite replays frames up to the last valid commit frame
*before the first invalid one*, and ignores the rest.

That is right for a torn tail: a crash during a write leaves an incomplete last transaction,
which was never acknowledged. But one damaged byte in the middle (bit rot, a bad sector, a
stray write) makes SQLite drop every transaction after it, committed and acknowledged, and
say nothing; the next writer then overwrites them for good.

The two differ in what follows the first invalid frame. After a crash, what lies beyond the
last commit is the rest of one transaction that never committed: its frames still chain on
from one another up to its own commit frame (a writer may even have been killed after
writing them all but before marking them committed, and another connection then written
over their start). After damage, the rest of the damaged transaction follows, and then every
later transaction, each committed, chaining on. So `check_wal` refuses the log when the
frames chaining on after the first invalid one hold a commit beyond the damaged
transaction's own.

What this cannot see, and SQLite cannot either:
  * damage in the last committed transaction: it looks exactly like a crash while writing it
    (SQLite drops that one transaction, no more);
  * damage in frames already copied into the database file, or in the database file itself:
    SQLite keeps no checksums of its pages (``PRAGMA integrity_check`` finds structural
    damage, not a changed value);
  * damage in the first 12 bytes of the log header (magic, format, page size): SQLite then
    ignores the log, and so does this check.
"""

from __future__ import annotations

import mmap
import os
import struct
import sys
from collections.abc import Callable

from .._errors import WalDamagedError

_WAL_MAGIC = 0x377F0682  # | 1: checksums over big-endian words
_WAL_HEADER = 32
_FRAME_HEADER = 24
_MASK = 0xFFFFFFFF


def _checksum(data: bytes, s0: int, s1: int, big_endian: bool) -> tuple[int, int]:
    """SQLite's WAL checksum: two running sums over pairs of 32-bit words."""
    words = struct.unpack(f"{'>' if big_endian else '<'}{len(data) // 4}I", data)
    for i in range(0, len(words), 2):
        s0 = (s0 + words[i] + s1) & _MASK
        s1 = (s1 + words[i + 1] + s0) & _MASK
    return s0, s1


class _Wal:
    """A WAL file's bytes, read once, and its frames."""

    def __init__(self, data: bytes | mmap.mmap) -> None:
        self.data = data
        magic, _, page_size = struct.unpack(">III", data[:12])
        self.valid_magic = magic & ~1 == _WAL_MAGIC
        self.big_endian = bool(magic & 1)
        self.page_size = page_size if self.valid_magic and _valid_page_size(page_size) else 0
        self.salts = data[16:24]
        s0, s1 = struct.unpack(">II", data[24:32])
        self.header_checksum: tuple[int, int] = (s0, s1)
        self.header_valid = self.valid_magic and self.page_size > 0 and self.header_checksum == _checksum(
            data[:24], 0, 0, self.big_endian
        )
        step = _FRAME_HEADER + self.page_size
        self.frames = (len(data) - _WAL_HEADER) // step if self.page_size else 0

    def _at(self, frame: int) -> int:
        return _WAL_HEADER + (frame - 1) * (_FRAME_HEADER + self.page_size)

    def salts_of(self, frame: int) -> bytes:
        at = self._at(frame)
        return self.data[at + 8 : at + 16]

    def is_commit(self, frame: int) -> bool:
        at = self._at(frame)
        size: int = struct.unpack(">I", self.data[at + 4 : at + 8])[0]
        return size != 0

    def stored(self, frame: int) -> tuple[int, int]:
        at = self._at(frame)
        s0, s1 = struct.unpack(">II", self.data[at + 16 : at + 24])
        return s0, s1

    def computed(self, frame: int, seed: tuple[int, int]) -> tuple[int, int]:
        at = self._at(frame)
        s0, s1 = _checksum(self.data[at : at + 8], *seed, self.big_endian)
        page = self.data[at + _FRAME_HEADER : at + _FRAME_HEADER + self.page_size]
        return _checksum(page, s0, s1, self.big_endian)

    def valid(self, frame: int, seed: tuple[int, int], salts: bytes) -> bool:
        return self.salts_of(frame) == salts and self.computed(frame, seed) == self.stored(frame)


def _valid_page_size(size: int) -> bool:
    return 512 <= size <= 65536 and size & (size - 1) == 0


def _replayed(head: bytes | None, wal: _Wal) -> tuple[int, tuple[int, int]] | None:
    """Where SQLite's replay of the WAL stopped, from its wal-index header (the first 96
    bytes of ``-shm``): the last frame replayed and its checksum. None if the header cannot
    be trusted (then the WAL is walked from its start instead).

    The wal-index header (fileformat2.html#walindexformat) is 48 bytes, stored twice, in
    native byte order: iVersion, unused, iChange, isInit, bigEndCksum, szPage, mxFrame,
    nPage, aFrameCksum[2], aSalt[2] (the WAL header's salt bytes as they are), aCksum[2].
    """
    if head is None or len(head) < 96 or head[:48] != head[48:96]:
        return None
    order = "<" if sys.byteorder == "little" else ">"
    checksum = struct.unpack(f"{order}II", head[40:48])
    if not head[12] or checksum != _checksum(head[:40], 0, 0, sys.byteorder == "big"):
        return None
    max_frame: int = struct.unpack(f"{order}I", head[16:20])[0]
    s0, s1 = struct.unpack(f"{order}II", head[24:32])
    if head[32:40] != wal.salts or max_frame > wal.frames:
        return None
    if max_frame == 0:  # nothing replayed: the first frame is seeded by the log header
        return 0, wal.header_checksum
    return max_frame, (s0, s1)


def check_wal(path: str, shm_header: Callable[[], bytes | None]) -> None:
    """Refuse a WAL whose committed transactions SQLite would drop without a word.

    Call it holding the database's write lock (``BEGIN IMMEDIATE``): SQLite has then
    replayed the WAL into its wal-index, which ``shm_header`` reads, and no connection can
    append to the WAL or start it over while it is read.

    Raises:
        WalDamagedError: a frame is invalid, and the frames that chain on after it hold a
            committed transaction beyond the one the invalid frame belongs to.
    """
    try:
        # Mapped, not read: only the header and the frames after the replay's end are
        # usually touched. SQLite never locks the -wal file, so closing it drops no lock.
        with open(f"{path}-wal", "rb") as file:
            if os.fstat(file.fileno()).st_size <= _WAL_HEADER:
                return
            with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
                _check(path, _Wal(data), shm_header)
    except FileNotFoundError:
        return


def _check(path: str, wal: _Wal, shm_header: Callable[[], bytes | None]) -> None:
    if not wal.valid_magic or not wal.page_size or not wal.frames:
        return  # nothing SQLite or anyone can read frames from
    if not wal.header_valid:
        # SQLite ignores a WAL whose header is damaged, frames and all. Its first frame was
        # seeded with the header's checksum: the stored one, or the recomputed one if the
        # damage hit the stored checksum itself.
        salts = wal.salts if wal.salts_of(1) == wal.salts else wal.salts_of(1)
        header = (wal.header_checksum, _checksum(wal.data[:24], 0, 0, wal.big_endian))
        _refuse_if_committed_after(path, wal, 0, header, salts)
        return
    start, seed = _replayed(shm_header(), wal) or (0, wal.header_checksum)
    # Walk on from where the replay stopped: valid frames there belong to a transaction
    # that never committed; the first invalid one is where SQLite stopped reading.
    frame = start + 1
    while frame <= wal.frames and wal.valid(frame, seed, wal.salts):
        seed = wal.stored(frame)
        frame += 1
    if frame <= wal.frames:
        _refuse_if_committed_after(path, wal, frame, (wal.stored(frame), wal.computed(frame, seed)), wal.salts)


def _refuse_if_committed_after(
    path: str, wal: _Wal, bad: int, after_bad: tuple[tuple[int, int], ...], salts: bytes
) -> None:
    """Follow the chain of frames after ``bad`` (0: the header): each with ``salts`` and a
    checksum that chains from the frame before it (the first from one of ``after_bad``:
    the bad frame's stored checksum, or the one recomputed from its content when the damage
    hit the stored checksum). Refuse if it holds a committed transaction beyond the one
    ``bad`` belongs to.

    Why beyond: what a crash leaves after the end of the log is the rest of *one*
    transaction that never committed (possibly cut where another writer wrote over its
    start), and that chains on too, up to its own commit frame. A damaged frame is followed
    by the rest of its own transaction and then by every later one, all committed.
    """
    commits = 1 if bad and wal.salts_of(bad) == salts and wal.is_commit(bad) else 0
    seeds = after_bad
    frame = bad + 1
    while frame <= wal.frames and wal.salts_of(frame) == salts:
        if not any(wal.computed(frame, seed) == wal.stored(frame) for seed in seeds):
            break
        commits += wal.is_commit(frame)
        seeds = (wal.stored(frame),)
        frame += 1
    if commits >= 2:
        raise WalDamagedError(path, bad, wal.frames, commits - 1)
