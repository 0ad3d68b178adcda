"""``wayline keys rotate``: re-encrypt stored secrets with the newest key.

Keys come from ``WAYLINE_ENCRYPTION_KEY`` only (``new,old,...``, each ``[id:]key``), never
from the command line, where other users of the machine could read them in the process list.
"""

from __future__ import annotations

import os
import sys

from ..persistence import KeyRotation
from ..runtime import rotate_keys
from . import _output as out
from ._commands import Options, _client
from ._errors import FAILED, OK, CliError

ENV_VAR = "WAYLINE_ENCRYPTION_KEY"


def _rows(done: KeyRotation) -> int:
    return done.snapshots + done.history_rows + done.inbox_messages + done.events + done.schedules + done.blobs


async def keys_rotate(opts: Options, batch_size: int) -> int:
    if not os.environ.get(ENV_VAR, "").strip():
        raise CliError(
            f"{ENV_VAR} is not set: set it to the new key first, then the old ones, comma-separated "
            f"('new-id:NEWKEY,old-id:OLDKEY'); the runs are re-encrypted with the first"
        )

    def report(done: KeyRotation) -> None:
        if not opts.json:
            print(
                f"\r{done.runs} runs looked at, {_rows(done)} rows re-encrypted",
                end="",
                file=sys.stderr,
            )

    async with _client(opts) as rt:  # the keys: from the environment
        result = await rotate_keys(rt, batch_size=batch_size, progress=report)
    if opts.json:
        out.emit_json(
            {
                "key_id": result.key_id,
                "runs": result.runs,
                "snapshots": result.snapshots,
                "history_rows": result.history_rows,
                "inbox_messages": result.inbox_messages,
                "events": result.events,
                "schedules": result.schedules,
                "blobs": result.blobs,
                "stale_blobs": result.stale_blobs,
                "raced": result.raced,
                "failed": [{"run_id": r, "reason": why} for r, why in result.failed],
            }
        )
    else:
        print(file=sys.stderr)
        print(
            f"re-encrypted {result.snapshots} snapshots and {result.history_rows} history rows of {result.runs} runs "
            f"with key {result.key_id!r}"
            + (
                f", and {result.inbox_messages} inbox messages, {result.events} events' data and "
                f"{result.schedules} schedules' inputs"
                if result.inbox_messages or result.events or result.schedules
                else ""
            )
            + (f", and {result.blobs} large values in the blob table" if result.blobs else "")
            + (
                f" ({result.stale_blobs} earlier values of deleted variables keep their key until their run is purged)"
                if result.stale_blobs
                else ""
            )
            + (f" ({result.raced} rows were written by their run meanwhile, with that key)" if result.raced else "")
        )
        for run_id, why in result.failed:
            print(f"not re-encrypted: run {run_id}: {why}" if run_id else f"not re-encrypted: {why}", file=sys.stderr)
    return FAILED if result.failed else OK
