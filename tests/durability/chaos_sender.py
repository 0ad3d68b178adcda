"""The other process of the chaos test: python chaos_sender.py DB TOKENS_FILE RUNS.

Started once the database exists. A client of it (``worker=False``) that sends every code run its "ping" signal and
answers one callback token of every run, whether or not a worker is alive at that moment:
what it sends is committed to the inbox before the call returns. It prints ACCEPTED with each
message the runtime accepted (the call returned), and DONE once every run has both.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from wayline import CallbackTokenError, RunNotFoundError, open_runtime


def say(*parts: object) -> None:
    print(*parts, flush=True)


def handed_out(tokens_file: str) -> list[tuple[str, str]]:
    """(run, token) for every link handed out so far."""
    if not os.path.exists(tokens_file):
        return []
    with open(tokens_file, encoding="utf-8") as f:
        pairs = [line.split() for line in f if line.endswith("\n")]  # a line being written waits
    return [(pair[0], pair[1]) for pair in pairs if len(pair) == 2]


async def main(db: str, tokens_file: str, runs: int) -> None:
    names = [f"{'code' if i % 2 == 0 else 'asl'}-{i}" for i in range(runs)]
    to_signal = {name for name in names if name.startswith("code")}
    to_answer = set(names)
    tried: set[str] = set()
    async with open_runtime(db, worker=False, inbox_poll_interval=None) as rt:
        while to_signal or to_answer:
            for name in sorted(to_signal):
                payload = f"ping-{name}"
                try:
                    await rt.signal(name, "ping", payload)
                except RunNotFoundError:
                    continue  # not started yet
                to_signal.discard(name)
                say("ACCEPTED", json.dumps({"run": name, "signal": payload}))
            for name, token in handed_out(tokens_file):
                if token in tried or name not in to_answer:
                    continue
                tried.add(token)
                answer = {"approved": name}
                try:
                    await rt.complete_callback(token, answer)
                except CallbackTokenError:
                    continue  # a token handed out again after a crash: another one answers
                to_answer.discard(name)
                say("ACCEPTED", json.dumps({"run": name, "callback": answer}))
            await asyncio.sleep(0.01)  # a client's polling pace, not a test's
    say("DONE")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
