"""Encryption: throughput with ``encrypt_payloads=True`` against without, and what one
`Secret` costs to encrypt (at a checkpoint) and to decrypt (when a run is read back).

Throughput (and CPU time per step): ``runs`` runs at once on a SQLite file (``synchronous=FULL``), each with a small
order as input, two vars and ``steps`` steps returning small dicts: every input, var, output
and step result is encrypted with ``encrypt_payloads=True``. The secret costs are medians of
``n`` sealings and openings of one vars entry, through the store's `Sealer` (encode + AES-256-
GCM + the extension, and back), the code a checkpoint and a read run.
"""

from __future__ import annotations

import os
import time
from typing import Any

from wayline import RunContext, Secret, activity, open_runtime, workflow
from wayline.persistence import KeyRing, RunRecord, Sealer

from ._common import Metrics, Params, cpu_seconds, db_file


@activity(name="bench_enc_step")
async def enc_step(order: dict[str, Any], i: int) -> dict[str, Any]:
    return {"step": i, "sku": order["sku"], "ok": True}


@workflow(name="bench_enc_order")
async def enc_order(ctx: RunContext, order: dict[str, Any]) -> dict[str, Any]:
    ctx.vars["customer"] = order["customer"]
    last: dict[str, Any] = {}
    for i in range(order["steps"]):
        last = await ctx.run(enc_step, order, i)
        ctx.vars["last"] = last
    return {"done": last["step"], "customer": order["customer"]}


async def throughput(params: Params) -> Metrics:
    """Runs per second with or without ``encrypt_payloads``."""
    runs, steps, encrypted = int(params["runs"]), int(params["steps"]), bool(params["encrypt"])
    path = str(db_file(params, "secrets.db"))
    key = os.urandom(32)
    async with open_runtime(path, workflows=[enc_order], encryption_key=key, encrypt_payloads=encrypted) as rt:
        t0, c0 = time.perf_counter(), cpu_seconds()
        handles = [
            await rt.start(
                enc_order,
                {"customer": f"c{i}", "sku": f"sku-{i % 97}", "address": "1 Bench Road, " * 4, "steps": steps},
            )
            for i in range(runs)
        ]
        for h in handles:
            await h.result()
        took, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    return {
        "runs_per_s": runs / took,
        "steps_per_s": runs * steps / took,
        # CPU time (all threads) moves far less than wall time when other processes load the
        # machine: the cost of encryption shows in it even when throughput swings 2x.
        "cpu_us_per_step": cpu / (runs * steps) * 1e6,
        "note": f"{runs} runs x {steps} steps in {took:.2f}s, encrypt_payloads={encrypted}",
    }


async def secret_costs(params: Params) -> Metrics:
    """Microseconds to encrypt one Secret for a checkpoint, and to decrypt it on a read."""
    n = int(params["n"])
    sealer = Sealer(KeyRing([("k1", os.urandom(32))]))
    record = RunRecord(run_id="bench-run", workflow="w", vars={"card": Secret("4111-1111-1111-1111")})
    sealed_once, _ = sealer.seal(record, [])
    seal_s, open_s = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        sealed, _ = sealer.seal(record, [])
        t1 = time.perf_counter()
        opened = sealer.open_record(sealed_once)
        t2 = time.perf_counter()
        seal_s.append(t1 - t0)
        open_s.append(t2 - t1)
    if opened.vars["card"].reveal() != "4111-1111-1111-1111" or sealed is record:
        raise AssertionError("the secret did not make the round trip")
    seal_s.sort()
    open_s.sort()
    return {
        "encrypt_us": seal_s[n // 2] * 1e6,
        "decrypt_us": open_s[n // 2] * 1e6,
        "note": f"median of {n}: one Secret in a run's vars, sealed and opened by the store's Sealer",
    }
