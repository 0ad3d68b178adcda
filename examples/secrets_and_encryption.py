"""Secrets and encryption at rest: a card token kept as a `Secret`, revealed only inside the
activity that uses it; every stored value encrypted with ``encrypt_payloads=True``; and a key
rotated while a run waits.

Run it: ``python examples/secrets_and_encryption.py``. It prints what each step shows; the
database file it leaves behind holds none of the plaintext (it checks).
"""

from __future__ import annotations

import asyncio
import base64
import os
import tempfile
from pathlib import Path
from typing import Any

from wayline import RunContext, Secret, activity, open_runtime, workflow
from wayline.runtime import rotate_keys

# Real keys come from a secret manager or the environment (WAYLINE_ENCRYPTION_KEY); 32 random
# bytes, given as bytes, hex or base64, optionally with an id: "2026-12:<base64>".
OLD_KEY = "2026-06:" + base64.b64encode(os.urandom(32)).decode()
NEW_KEY = "2026-12:" + base64.b64encode(os.urandom(32)).decode()


@activity
async def charge(card: Secret[str], amount: float) -> dict[str, Any]:
    number = card.reveal()  # the only place the value is seen
    return {"charged": amount, "last4": number[-4:], "auth": Secret(f"auth-{number[-4:]}-ok")}


@workflow
async def checkout(ctx: RunContext, order: dict[str, Any]) -> dict[str, Any]:
    ctx.vars["card"] = order["card"]  # stored encrypted at every checkpoint
    await ctx.wait_signal("confirmed")
    receipt: dict[str, Any] = await ctx.run(charge, ctx.vars["card"], order["amount"])
    return receipt


async def main(db: str) -> None:
    async with open_runtime(db, workflows=[checkout], encryption_key=OLD_KEY) as rt:
        await rt.start(checkout, {"card": Secret("4111111111111111"), "amount": 25.0}, run_id="order-1")
        await asyncio.sleep(0.05)
        info = await rt.describe("order-1")
        print("waiting, vars:", info.vars)  # {'card': Secret('***')}

    # Rotation: the new key encrypts, the old one still decrypts until everything is rotated.
    async with open_runtime(db, workflows=[checkout], encryption_key=NEW_KEY, encryption_keys=[OLD_KEY]) as rt:
        done = await rotate_keys(rt)
        print(f"rotated to {done.key_id!r}: {done.runs} run(s), nothing failed: {not done.failed}")

    # The old key is no longer needed.
    async with open_runtime(db, workflows=[checkout], encryption_key=NEW_KEY) as rt:
        await rt.signal("order-1", "confirmed")
        receipt = await rt.get_handle("order-1").result()
        print("receipt:", receipt)  # the auth code stays a Secret
        print("auth revealed:", receipt["auth"].reveal())

    # encrypt_payloads: every input, output, variable and step result is encrypted too.
    async with open_runtime(db, workflows=[checkout], encryption_key=NEW_KEY, encrypt_payloads=True) as rt:
        await rt.start(checkout, {"card": Secret("5500005555555559"), "amount": 99.5}, run_id="order-2")
        await asyncio.sleep(0.05)
        await rt.signal("order-2", "confirmed")
        print("order-2:", (await rt.get_handle("order-2").result())["charged"])

    stored = b"".join(p.read_bytes() for p in Path(db).parent.iterdir() if p.name.startswith(Path(db).name))
    print("plaintext on disk:", any(s in stored for s in (b"4111111111111111", b"5500005555555559", b"auth-1111")))


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(main(os.path.join(tmp, "secrets.db")))
