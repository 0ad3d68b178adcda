"""`wayline signal`, `cancel` and `callback ...`: messages committed to the durable inbox by
a client process, delivered by the worker that runs the run."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from wayline import CallbackError, RunCancelled, RunContext, RunStatus, activity, open_runtime, workflow
from wayline.testing import VirtualClock

from .conftest import WAYLINE, WORKFLOWS, Cli, approval, settle


async def _resume(db: str, run_id: str) -> object:
    """Open the database as its worker and wait for ``run_id`` to end."""
    async with open_runtime(db, workflows=WORKFLOWS) as rt:
        return await rt.get_handle(run_id).result()


def test_signal_reaches_the_run_when_a_worker_opens_the_database(cli: Cli) -> None:
    res = cli("signal", "waiting", "verdict", '{"ok": true, "by": "ana"}')
    assert res.code == 0, res.err
    assert "committed to the inbox of run 'waiting'" in res.out
    assert asyncio.run(_resume(cli.db, "waiting")) == "contract-7: {'ok': True, 'by': 'ana'}"


def test_signal_payload_from_stdin_and_json_output(cli: Cli) -> None:
    res = cli("signal", "waiting", "verdict", "@-", "--json", stdin='"approved"\n')
    assert res.code == 0, res.err
    assert res.json() == {"run_id": "waiting", "signal": "verdict", "sent": True}
    assert asyncio.run(_resume(cli.db, "waiting")) == "contract-7: approved"


@pytest.mark.anyio
async def test_signal_is_delivered_by_a_running_worker(db: str) -> None:
    # The real deployment: a worker owns the database and runs the run; the CLI, another
    # process, only commits to the inbox, and the worker's inbox poller delivers it.
    async with open_runtime(db, workflows=WORKFLOWS, inbox_poll_interval=0.02) as rt:
        proc = await asyncio.create_subprocess_exec(
            str(WAYLINE), "signal", "waiting", "verdict", '"signed"', "--db", db, stderr=asyncio.subprocess.PIPE
        )
        _, err = await proc.communicate()
        assert proc.returncode == 0, err
        assert await rt.get_handle("waiting").result() == "contract-7: signed"


def test_bad_json_says_which_argument_and_where(cli: Cli) -> None:
    res = cli("signal", "waiting", "verdict", '{"ok": true "by": 1}')
    assert res.code == 2
    assert res.err.splitlines() == [
        "wayline: error: the signal payload (argument JSON) is not valid JSON: Expecting ',' delimiter "
        "at line 1, column 13, after '{\"ok\": true '"
    ]
    res = cli("signal", "waiting", "verdict", "approved")
    assert res.code == 2
    assert "a JSON string needs quotes, e.g. '\"approved\"'" in res.err
    res = cli("signal", "waiting", "verdict", "@missing.json")
    assert res.code == 1 and "file 'missing.json' does not exist" in res.err


def test_signal_or_cancel_a_finished_run_fails(cli: Cli) -> None:
    res = cli("signal", "paid", "verdict", "1")
    assert res.code == 1
    assert res.err.splitlines() == [
        "wayline: error: cannot signal 'verdict' to run 'paid': it has already finished (SUCCEEDED)"
    ]
    res = cli("cancel", "declined")
    assert res.code == 1 and "cannot cancel run 'declined': it has already finished (FAILED)" in res.err
    for args in (("signal", "nope", "x"), ("cancel", "nope")):
        res = cli(*args)
        assert res.code == 1 and "no run with id 'nope'" in res.err


def test_cancel_is_applied_by_the_worker(cli: Cli) -> None:
    res = cli("cancel", "waiting", "--reason", "customer left", "--json")
    assert res.code == 0, res.err
    assert res.json() == {"run_id": "waiting", "cancel_requested": True, "reason": "customer left"}
    with pytest.raises(RunCancelled, match="customer left"):
        asyncio.run(_resume(cli.db, "waiting"))
    assert cli("runs", "show", "waiting", "--json").json()["status"] == RunStatus.CANCELLED.value


def test_clients_work_while_a_worker_owns_the_database(cli: Cli) -> None:
    async def scenario() -> None:
        async with open_runtime(cli.db, workflows=[approval], inbox_poll_interval=None):  # holds the owner lock
            for args in (("runs", "show", "waiting"), ("signal", "waiting", "verdict", "1")):
                proc = await asyncio.create_subprocess_exec(
                    str(WAYLINE), *args, "--db", cli.db, stdout=asyncio.subprocess.PIPE
                )
                out, _ = await proc.communicate()
                assert proc.returncode == 0, args
                assert b"waiting" in out

    asyncio.run(scenario())


tokens: list[str] = []


@activity(name="send_token")
async def send_token(token: str, doc: str) -> None:
    tokens.append(token)


@workflow(name="sign")
async def sign(ctx: RunContext, doc: str) -> str:
    try:
        answer = await ctx.wait_for_callback(send_token, doc)
    except CallbackError as exc:
        return f"{doc}: {exc.error}: {exc.cause}"
    return f"{doc}: {answer}"


@pytest.fixture
def signing(tmp_path: Path) -> tuple[Cli, str]:
    """A database with one run waiting on a callback, and the token it handed out."""
    db = str(tmp_path / "sign.db")

    async def populate() -> None:
        clock = VirtualClock(start=time.time())
        async with open_runtime(db, workflows=[sign], clock=clock) as rt:
            await rt.start(sign, "lease", run_id="signing")
            await settle(clock)
            assert (await rt.describe("signing")).status is RunStatus.WAITING

    tokens.clear()
    asyncio.run(populate())
    assert len(tokens) == 1
    return Cli(db, tmp_path), tokens[0]


async def _finish_sign(db: str) -> object:
    async with open_runtime(db, workflows=[sign]) as rt:
        return await rt.get_handle("signing").result()


def test_callback_complete_reaches_the_run_once(signing: tuple[Cli, str]) -> None:
    cli, token = signing
    res = cli("callback", "heartbeat", token)
    assert res.code == 0, res.err
    res = cli("callback", "complete", token, '{"approved": true}', "--json")
    assert res.code == 0, res.err
    assert res.json() == {"callback": "completed", "sent": True}
    assert asyncio.run(_finish_sign(cli.db)) == "lease: {'approved': True}"
    again = cli("callback", "complete", token, "1")
    assert again.code == 1
    assert again.err.startswith("wayline: error: callback token rejected: ") and len(again.err.splitlines()) == 1


def test_callback_fail_reaches_the_run(signing: tuple[Cli, str]) -> None:
    cli, token = signing
    res = cli("callback", "fail", token, "--error", "Rejected", "--cause", "too late")
    assert res.code == 0, res.err
    assert asyncio.run(_finish_sign(cli.db)) == "lease: Rejected: too late"


@pytest.mark.parametrize(
    "args",
    [
        ("callback", "complete", "not-a-token", '{"approved": true}'),
        ("callback", "fail", "not-a-token", "--error", "Rejected", "--cause", "no"),
        ("callback", "heartbeat", "not-a-token"),
    ],
)
def test_unknown_callback_token(cli: Cli, args: tuple[str, ...]) -> None:
    res = cli(*args)
    assert res.code == 1
    assert res.err.startswith("wayline: error: callback token rejected: this is not a wayline callback token")
    assert len(res.err.splitlines()) == 1


def test_callback_usage_errors(cli: Cli) -> None:
    res = cli("callback", "fail", "tok")
    assert res.code == 2 and "--error" in res.err
    res = cli("callback", "fail", "tok", "--error", "")
    assert res.code == 2 and "--error must name the error" in res.err
    res = cli("callback", "complete", "tok", "{nope")
    assert res.code == 2
    assert "the callback output (argument JSON) is not valid JSON" in res.err
