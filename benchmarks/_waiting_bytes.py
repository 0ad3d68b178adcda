"""Where the bytes of a live waiting run go: a table, not a benchmark row.

``python -m benchmarks._waiting_bytes [N]`` prepares N ``bench_idle`` runs (each parked on a
signal with a 30-day timeout, then passivated) in a scratch SQLite file, then opens it again
in this process with every run loaded, as the mailbox suite's measured phase does, and prints:

- the resident memory the process grew by, per run, without tracemalloc (a second process
  run of this module is the way to see how noisy that is: a few hundred bytes);
- with tracemalloc: the Python memory still allocated per run, grouped by the innermost line
  of wayline (or of the workflow body) that allocated it, largest first.

The difference between the two is memory Python's allocator does not attribute to a line:
SQLite's page caches (one per connection, up to 32 MiB each, filled by reading and
checkpointing every run), free blocks left in pymalloc's arenas by the recovery's transient
objects, and the runtime's fixed cost spread over N.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import linecache
import shutil
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path

from ._wayline import _setup
from ._wayline_mailbox import _rss_bytes, _until_all_loaded, _until_all_passivated


async def _prepare(db: str, n: int) -> None:
    wl, wfs = _setup()
    async with wl.open_runtime(db, workflows=wfs.all, passivate_after=0.05) as rt:
        for first in range(0, n, 1000):
            batch = range(first, min(n, first + 1000))
            await asyncio.gather(*(rt.start(wfs.idle, i, run_id=f"w{i}") for i in batch))
        await _until_all_passivated(rt)


def _where(traceback: tracemalloc.Traceback) -> str:
    for frame in reversed(traceback):  # the innermost frame that is ours
        if "/wayline/" in frame.filename or "benchmarks" in frame.filename:
            return f"{frame.filename}:{frame.lineno}"
    frame = traceback[-1]
    return f"{frame.filename}:{frame.lineno}"


async def _measure(db: str, n: int, trace: bool) -> None:
    wl, wfs = _setup()
    gc.collect()
    if trace:
        tracemalloc.start(30)
    before = _rss_bytes()
    async with wl.open_runtime(db, workflows=wfs.all, passivate_after=None) as rt:
        await _until_all_loaded(rt, n)
        await asyncio.sleep(0.2)
        gc.collect()
        grown = (_rss_bytes() - before) / n
        if not trace:
            print(f"RSS growth per live waiting run (no tracemalloc): {grown:,.0f} B")
            return
        snapshot = tracemalloc.take_snapshot()
    sizes: collections.Counter[str] = collections.Counter()
    blocks: collections.Counter[str] = collections.Counter()
    for trace_ in snapshot.traces:
        key = _where(trace_.traceback)
        sizes[key] += trace_.size
        blocks[key] += 1
    total = sum(sizes.values())
    print(f"Python memory per live waiting run (tracemalloc): {total / n:,.0f} B")
    print(f"{'B/run':>8} {'blocks':>6}  line")
    shown = 0
    for key, size in sizes.most_common():
        if size / n < 8:
            break
        shown += size
        path, lineno = key.rsplit(":", 1)
        source = linecache.getline(path, int(lineno)).strip()[:70]
        short = path.split("/src/")[-1].split("/benchmarks/")[-1]
        print(f"{size / n:8.0f} {blocks[key] / n:6.2f}  {short}:{lineno}  {source}")
    print(f"{(total - shown) / n:8.0f}         the rest (under 8 B each)")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    if len(sys.argv) > 2:  # a child: one phase on an existing file
        phase, db = sys.argv[2], sys.argv[3]
        try:
            import uvloop

            run = uvloop.run
        except ImportError:  # pragma: no cover - uvloop is a benchmark dependency
            run = asyncio.run
        run(_prepare(db, n) if phase == "prepare" else _measure(db, n, phase == "trace"))
        return
    scratch = Path(tempfile.mkdtemp(prefix="wayline-waiting-bytes-"))
    try:
        prepared = scratch / "prepared.db"
        child = [sys.executable, "-m", "benchmarks._waiting_bytes", str(n)]
        subprocess.run([*child, "prepare", str(prepared)], check=True)
        for phase in ("rss", "trace"):  # each on a fresh copy, in a fresh process
            db = scratch / f"{phase}.db"
            shutil.copy(prepared, db)
            subprocess.run([*child, phase, str(db)], check=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
