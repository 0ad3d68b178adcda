"""With ``encrypt_payloads=True`` each event of a run is encrypted once: an event rides in the
snapshot's tail at every checkpoint until the tail moves to the history table, and it keeps the
ciphertext it was given first (same bytes, same nonce) instead of being encrypted again at each
checkpoint. Distinct events still get distinct nonces, and each ciphertext stays bound to its
run and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from encryption._at_rest import MAGIC, sqlite_bytes
from wayline import RunContext, Secret, activity, open_runtime, workflow
from wayline.errors import SecretDecryptError
from wayline.persistence import KeyRing, RunRecord, Sealer
from wayline.persistence._codec import store_encode
from wayline.persistence._records import RunStarted, StepSucceeded

pytestmark = pytest.mark.anyio

KEY = bytes(range(32))
LABEL = MAGIC + b"\x02k1"  # what precedes each ciphertext's nonce under the key id "k1"


def _nonces(data: bytes) -> list[bytes]:
    """The nonce of every ciphertext under key "k1" in ``data`` (one per encryption)."""
    out, at = [], data.find(LABEL)
    while at >= 0:
        out.append(data[at + len(LABEL) : at + len(LABEL) + 12])
        at = data.find(LABEL, at + 1)
    return out


def _step(i: int) -> StepSucceeded:
    return StepSucceeded(ts=float(i), index=i, step="s", attempt=1, result={"step": i, "card": "4111"})


def _record(tail: tuple[Any, ...], seq: int = 0) -> RunRecord:
    return RunRecord(run_id="r1", workflow="w", input={"order": 1}, tail=tail, history_seq=seq)


@pytest.mark.parametrize("payloads", [True, False])
def test_an_event_in_the_tail_is_sealed_once_until_it_moves_to_the_history(payloads: bool) -> None:
    sealer = Sealer(KeyRing([("k1", KEY)]), encrypt_payloads=payloads)
    started = RunStarted(ts=0.0, workflow="w", version="1", input={"order": Secret("4111")})
    s0, s1 = _step(0), _step(1)
    if not payloads:  # only the Secrets are sealed: give the steps one each
        s0 = msgspec.structs.replace(s0, result={"card": Secret("4111")})
        s1 = msgspec.structs.replace(s1, result={"card": Secret("4111")})

    first, new = sealer.seal(_record((started, s0)), [started, s0])
    assert first.tail[0] is not started and new == list(first.tail)
    second, new = sealer.seal(_record((started, s0, s1)), [s1])
    # The events already in the tail keep their sealed form; only the new one is sealed.
    assert second.tail[0] is first.tail[0] and second.tail[1] is first.tail[1]
    assert new == [second.tail[2]] and second.tail[2] is not s1
    # The tail moves to the history: the history gets the same ciphertexts, and nothing stays cached.
    moved, rows = sealer.seal(_record((), 1), [started, s0, s1])
    assert moved.tail == () and rows == list(second.tail)
    assert all(a is b for a, b in zip(rows, second.tail, strict=True))
    again, _ = sealer.seal(_record((s0,), 1), [])
    assert again.tail[0] is not second.tail[1], "an event no longer in the tail was kept in the cache"

    # An equal but distinct event gets its own encryption (its own nonce).
    twin = _step(0) if payloads else msgspec.structs.replace(_step(0), result={"card": Secret("4111")})
    sealed_twin, _ = sealer.seal(_record((s0, twin), 1), [])
    assert store_bytes(sealed_twin.tail[0]) != store_bytes(sealed_twin.tail[1])

    # Every cached ciphertext opens in its run and field, and nowhere else.
    opened = sealer.open_record(second)
    if payloads:
        assert opened.tail[2] == s1
    else:
        assert opened.tail[2].result["card"].reveal() == "4111"
    with pytest.raises(SecretDecryptError, match="run 'r2'"):
        sealer.open_record(msgspec.structs.replace(second, run_id="r2"))
    step0, step1 = second.tail[1], second.tail[2]
    assert isinstance(step0, StepSucceeded) and isinstance(step1, StepSucceeded)
    moved = msgspec.structs.replace(step1, result=step0.result)  # step #0's ciphertext as step #1's
    moved_field = msgspec.structs.replace(second, tail=(second.tail[0], step0, moved))
    with pytest.raises(SecretDecryptError, match="step #1"):
        sealer.open_record(moved_field)


def test_the_cache_of_a_run_is_dropped_when_it_ends() -> None:
    sealer = Sealer(KeyRing([("k1", KEY)]), encrypt_payloads=True)
    s0 = _step(0)
    first, _ = sealer.seal(_record((s0,)), [s0])
    sealer.run_ended("r1")
    second, _ = sealer.seal(_record((s0,)), [])
    assert store_bytes(first.tail[0]) != store_bytes(second.tail[0])


def store_bytes(event: Any) -> bytes:
    return store_encode(event)


@activity(name="once_step")
async def once_step(i: int) -> dict[str, Any]:
    return {"step": i, "note": "a result"}


@workflow(name="once_flow")
async def once_flow(ctx: RunContext, steps: int) -> int:
    for i in range(steps):
        await ctx.run(once_step, i)
    return steps


async def test_a_run_encrypts_each_value_once_at_rest(tmp_path: Path) -> None:
    """Every version of the run's snapshot the WAL holds (one per checkpoint, the tail growing
    by a step each) repeats the ciphertexts of the earlier steps: as many distinct nonces as
    values stored, not one per value per checkpoint."""
    db, steps = str(tmp_path / "once.db"), 12
    async with open_runtime(db, workflows=[once_flow], encryption_key="k1:" + KEY.hex(), encrypt_payloads=True) as rt:
        handle = await rt.start(once_flow, steps, run_id="o1")
        assert await handle.result() == steps
        at_rest = sqlite_bytes(db)
    nonces = _nonces(at_rest)
    # input, RunStarted's input, a result per step, the output and RunSucceeded's output.
    assert len(set(nonces)) == steps + 4
    # The tail's ciphertexts were written again at every checkpoint: the same bytes repeated.
    assert len(nonces) > 2 * len(set(nonces))
