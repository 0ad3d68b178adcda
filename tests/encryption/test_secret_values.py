"""`Secret` values: encrypted at rest (AES-256-GCM, bound to run and field), revealed inside
activities, shown as ``Secret('***')`` everywhere else; on memory, SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from _postgres import fresh_database
from encryption._at_rest import key_ids_in, stored
from wayline import RunContext, Secret, activity, open_runtime, workflow
from wayline.errors import EncryptionKeyError, SecretDecryptError
from wayline.persistence import KeyRing, RunRecord, RunStatus, Sealer
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio

KEY = bytes(range(32))
OTHER = bytes(range(1, 33))
TOKEN = "tok-PLAINTEXT-4f9a"  # what must never be found at rest
MINTED = "minted-PLAINTEXT-77c1"


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "postgres":
        with fresh_database() as url:
            yield url
        return
    yield ":memory:" if request.param == "memory" else str(tmp_path / "wayline.db")


SEEN: list[Any] = []


@activity(name="use_token")
async def use_token(token: Secret[str]) -> int:
    SEEN.append(token.reveal())
    return len(token.reveal())


@activity(name="mint")
async def mint() -> Secret[str]:
    return Secret(MINTED)


@activity(name="leaky")
async def leaky(token: Secret[str]) -> None:
    raise ValueError(f"the card was declined with {token}")


@workflow(name="pay")
async def pay(ctx: RunContext, order: dict[str, Any]) -> dict[str, Any]:
    ctx.vars["token"] = order["token"]
    minted = await ctx.run(mint)
    ctx.vars["minted"] = minted
    await ctx.wait_signal("go")
    a = await ctx.run(use_token, ctx.vars["token"])
    b = await ctx.run(use_token, minted)
    return {"lengths": [a, b], "kept": minted}


@workflow(name="leak")
async def leak(ctx: RunContext, token: Secret[str]) -> None:
    await ctx.run(leaky.options(retry=None), token)


class Card(msgspec.Struct):
    number: Secret[str] | None = None
    uses: int = 0


@workflow(name="typed", vars=Card)
async def typed(ctx: RunContext[Card], number: Secret[str]) -> int:
    ctx.vars.number = number
    ctx.vars.uses = 1
    await ctx.wait_signal("go")
    assert ctx.vars.number is not None
    return await ctx.run(use_token, ctx.vars.number)


# --- the type ------------------------------------------------------------------------------


def test_a_secret_never_shows_its_value() -> None:
    s = Secret(TOKEN)
    assert repr(s) == str(s) == f"{s}" == f"{s!r}" == f"{s:>20}" == "Secret('***')"
    assert TOKEN not in repr({"k": [s]})
    assert s.reveal() == TOKEN
    assert s == Secret(TOKEN) and s != Secret("other") and hash(s) == hash(Secret(TOKEN))
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(s)
    with pytest.raises(TypeError, match="already a secret"):
        Secret(s)


@pytest.mark.parametrize(
    "given",
    [
        KEY,
        KEY.hex(),
        base64.b64encode(KEY).decode(),
        base64.urlsafe_b64encode(KEY).decode().rstrip("="),
        "k9:" + KEY.hex(),
    ],
)
def test_keys_are_raw_hex_or_base64_with_an_optional_id(given: bytes | str) -> None:
    ring = KeyRing.from_options(given, None, environ={})
    assert ring.current == ("k9" if isinstance(given, str) and given.startswith("k9:") else ring.current)
    assert ring.current is not None
    # The same key has the same id in every process (derived from the key).
    assert (
        KeyRing.from_options(KEY, None, environ={}).current == KeyRing.from_options(KEY.hex(), None, environ={}).current
    )


@pytest.mark.parametrize("bad", [b"short", "not a key at all", "ab" * 31, 5])
def test_a_key_that_is_not_32_bytes_is_refused_saying_how_to_make_one(bad: Any) -> None:
    with pytest.raises(EncryptionKeyError, match="encryption_key") as info:
        KeyRing.from_options(bad, None, environ={})
    assert "32" in str(info.value)


def test_the_environment_gives_the_keys_newest_first() -> None:
    env = {"WAYLINE_ENCRYPTION_KEY": f"new:{OTHER.hex()}, old:{base64.b64encode(KEY).decode()}"}
    ring = KeyRing.from_options(None, None, environ=env)
    assert ring.current == "new" and ring.ids == ["new", "old"]
    # Given in code, the environment is not read.
    assert KeyRing.from_options(KEY, None, environ=env).ids != ["new", "old"]


def test_a_ciphertext_opens_only_in_its_run_and_field() -> None:
    sealer = Sealer(KeyRing([("k1", KEY)]))
    rec = RunRecord(run_id="a", workflow="w", vars={"x": Secret(TOKEN), "y": 1})
    sealed, _ = sealer.seal(rec, [])
    assert sealer.open_record(sealed).vars["x"].reveal() == TOKEN
    moved_run = msgspec.structs.replace(sealed, run_id="b")
    with pytest.raises(SecretDecryptError, match=r"run 'b'.*vars\['x'\].*another run or field"):
        sealer.open_record(moved_run)
    moved_field = msgspec.structs.replace(sealed, vars={"y": sealed.vars["x"]})
    with pytest.raises(SecretDecryptError, match=r"vars\['y'\]"):
        sealer.open_record(moved_field)
    # A key with the same id but other bytes: refused the same way, and precisely.
    with pytest.raises(SecretDecryptError, match="k1"):
        Sealer(KeyRing([("k1", OTHER)])).open_record(sealed)


# --- in runs -------------------------------------------------------------------------------


async def test_secrets_in_input_vars_and_results_are_revealed_in_activities_and_shown_masked(db: str) -> None:
    SEEN.clear()
    clock = VirtualClock()
    async with open_runtime(db, workflows=[pay], clock=clock, encryption_key=KEY) as rt:
        handle = await rt.start(pay, {"token": Secret(TOKEN)}, run_id="p1")
        await clock.sleep(0.001)
        info = await rt.describe("p1")
        assert info.vars == {"token": Secret(TOKEN), "minted": Secret(MINTED)}
        assert "PLAINTEXT" not in repr(info)
        await rt.signal("p1", "go")
        out = await handle.result()
        assert out["lengths"] == [len(TOKEN), len(MINTED)]
        assert isinstance(out["kept"], Secret) and out["kept"].reveal() == MINTED
        assert SEEN == [TOKEN, MINTED]
        events = [e async for e in rt.history("p1")]
        assert "PLAINTEXT" not in repr(events) and "Secret('***')" in repr(events)


async def test_a_run_resumes_with_its_secrets_after_a_restart(db: str) -> None:
    if db == ":memory:":
        pytest.skip("a restart needs a database that outlives the runtime")
    SEEN.clear()
    clock = VirtualClock()
    async with open_runtime(db, workflows=[pay], clock=clock, encryption_key=KEY) as rt:
        await rt.start(pay, {"token": Secret(TOKEN)}, run_id="p2")
        await clock.sleep(0.001)
        assert (await rt.describe("p2")).status is RunStatus.WAITING
    clock = VirtualClock()
    async with open_runtime(db, workflows=[pay], clock=clock, encryption_key=KEY) as rt:
        await clock.sleep(0.001)
        await rt.signal("p2", "go")
        out = await rt.get_handle("p2").result()
    assert SEEN == [TOKEN, MINTED]
    assert out["lengths"] == [len(TOKEN), len(MINTED)] and out["kept"].reveal() == MINTED


async def test_typed_vars_hold_a_secret(db: str) -> None:
    SEEN.clear()
    clock = VirtualClock()
    async with open_runtime(db, workflows=[typed], clock=clock, encryption_key=KEY) as rt:
        handle = await rt.start(typed, Secret(TOKEN), run_id="t1")
        await clock.sleep(0.001)
        assert (await rt.describe("t1")).vars == {"number": Secret(TOKEN), "uses": 1}
        await rt.signal("t1", "go")
        assert await handle.result() == len(TOKEN)
    assert SEEN == [TOKEN]


async def test_an_exception_message_shows_the_secret_masked(db: str) -> None:
    clock = VirtualClock()
    async with open_runtime(db, workflows=[leak], clock=clock, encryption_key=KEY) as rt:
        handle = await rt.start(leak, Secret(TOKEN), run_id="l1")
        with pytest.raises(Exception) as info:
            await handle.result()
        assert "Secret('***')" in str(info.value) and "PLAINTEXT" not in str(info.value)
        events = [e async for e in rt.history("l1")]
        assert "PLAINTEXT" not in repr(events)


async def test_a_secret_without_a_key_is_refused_and_nothing_is_stored(db: str) -> None:
    os.environ.pop("WAYLINE_ENCRYPTION_KEY", None)
    async with open_runtime(db, workflows=[pay], clock=VirtualClock()) as rt:
        with pytest.raises(EncryptionKeyError, match=r"input\['token'\].*encryption_key"):
            await rt.start(pay, {"token": Secret(TOKEN)}, run_id="nokey")
        assert await rt.store.get_run("nokey") is None


async def test_two_runtimes_in_one_process_use_their_own_keys(tmp_path: Path) -> None:
    SEEN.clear()
    a, b = str(tmp_path / "a.db"), str(tmp_path / "b.db")
    ca, cb = VirtualClock(), VirtualClock()
    async with (
        open_runtime(a, workflows=[pay], clock=ca, encryption_key="ka:" + KEY.hex()) as ra,
        open_runtime(b, workflows=[pay], clock=cb, encryption_key="kb:" + OTHER.hex()) as rb,
    ):
        ha = await ra.start(pay, {"token": Secret(TOKEN)}, run_id="r")
        hb = await rb.start(pay, {"token": Secret("b-" + TOKEN)}, run_id="r")
        await ca.sleep(0.001)
        await cb.sleep(0.001)
        await ra.signal("r", "go")
        await rb.signal("r", "go")
        assert (await ha.result())["lengths"][0] == len(TOKEN)
        assert (await hb.result())["lengths"][0] == len(TOKEN) + 2
    assert sorted(SEEN) == sorted([TOKEN, MINTED, "b-" + TOKEN, MINTED])
    # Each database holds values encrypted with its own key, not the other's.
    assert key_ids_in(await stored(a), "ka", "kb") == {"ka"}
    assert key_ids_in(await stored(b), "ka", "kb") == {"kb"}
