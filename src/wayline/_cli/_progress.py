"""A one-line progress display on stderr for commands that wait, shown only on a terminal."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator
from typing import TextIO

from ..runtime import Runtime
from ._details import describe_wait

_SPIN = "|/-\\"
_INTERVAL = 0.25


def _where(state: object) -> str:
    """The current state of a state machine run, from its snapshot, if it is one."""
    if isinstance(state, dict):
        frame = state.get("frame")
        if isinstance(frame, dict) and isinstance(frame.get("state"), str):
            return f"state {frame['state']}"
    return ""


async def _draw(rt: Runtime, run_id: str, stream: TextIO) -> None:
    started = time.monotonic()
    tick = 0
    while True:
        rec = await rt.store.get_run(run_id)
        parts = [f"run {run_id}"]
        if rec is not None:
            parts.append(rec.status.value)
            where = _where(rec.state)
            if where:
                parts.append(where)
            elif rec.steps:
                parts.append(f"{rec.steps} steps")
            now = time.time()
            if rec.waits:
                parts.append("waiting for " + "; ".join(describe_wait(w, now).text for w in rec.waits))
        parts.append(f"{time.monotonic() - started:.0f}s")
        stream.write(f"\r\x1b[K{_SPIN[tick % len(_SPIN)]} " + ", ".join(parts))
        stream.flush()
        tick += 1
        await asyncio.sleep(_INTERVAL)


@contextlib.asynccontextmanager
async def progress(rt: Runtime, run_id: str, stream: TextIO | None = None) -> AsyncIterator[None]:
    """Redraw the run's status on ``stream`` (stderr) while the block runs, if it is a TTY."""
    out = stream or sys.stderr
    if not out.isatty():
        yield
        return
    task = asyncio.ensure_future(_draw(rt, run_id, out))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        out.write("\r\x1b[K")
        out.flush()
