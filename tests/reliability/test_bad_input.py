"""Bad input at the API boundary: refused with a precise error before anything is stored, so
no run becomes unreadable; a bad inbox row written by another process does not stop the
owner delivering other runs' signals; deep or self-referencing payloads are `PayloadError`."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from wayline import PayloadError, RetryPolicy, RunContext, RunFailed, RunStatus, open_runtime, workflow
from wayline.errors import InvalidArgumentError

WAYLINE = Path(sys.executable).with_name("wayline")


@workflow(name="waits")
async def waits(ctx: RunContext, label: str) -> str:
    got = await ctx.wait_signal("go")
    return f"{label}:{got}"


def _deep(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels):
        value = [value]
    return value


def _cyclic() -> list[Any]:
    value: list[Any] = []
    value.append(value)
    return value


# (call, arguments, the argument the error must name)
BAD_CALLS: list[tuple[str, tuple[Any, ...], dict[str, Any], str]] = [
    ("start", (waits, "x"), {"run_id": 123}, "run_id"),
    ("start", (waits, "x"), {"run_id": ""}, "run_id"),
    ("start", (waits, "x"), {"run_id": "a\nb"}, "run_id"),
    ("start", (waits, "x"), {"run_id": "r" * 300}, "run_id"),
    ("start", (waits, "x"), {"version": 1}, "version"),
    ("signal", ("w1", None, 1), {}, "name"),
    ("signal", (7, "go", 1), {}, "run_id"),
    ("cancel", ("w1",), {"reason": 5}, "reason"),
    ("cancel", ("w1",), {"reason": "x" * 40_000}, "reason"),
    ("describe", (None,), {}, "run_id"),
    ("history_list", (b"w1",), {}, "run_id"),
    ("redrive", (1.5,), {}, "run_id"),
    ("list_runs", (), {"status": "BOGUS"}, "status"),
    ("list_runs", (), {"status": [1, 2]}, "status"),
    ("list_runs", (), {"limit": "10"}, "limit"),
    ("list_runs", (), {"limit": -1}, "limit"),
    ("list_runs", (), {"since": "yesterday"}, "since"),
    ("list_runs", (), {"workflow": 3}, "workflow"),
    ("list_runs", (), {"newest_first": "yes"}, "newest_first"),
    ("complete_callback", (42,), {}, "token"),
    ("fail_callback", ("wlcb1.x.y", 5), {}, "error"),
    ("fail_callback", ("wlcb1.x.y", "Rejected", 5), {}, "cause"),
    ("heartbeat", (None,), {}, "token"),
    ("get_handle", (3,), {}, "run_id"),
    ("get_schedule", (None,), {}, "schedule_id"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("call", "args", "kwargs", "argument"), BAD_CALLS, ids=lambda v: str(v)[:30])
async def test_bad_arguments_are_refused_naming_the_argument(
    tmp_path: Path, call: str, args: tuple[Any, ...], kwargs: dict[str, Any], argument: str
) -> None:
    async with open_runtime(tmp_path / "w.db", workflows=[waits]) as rt:
        await rt.start(waits, "a", run_id="w1")
        if call == "history_list":

            async def method(*a: Any, **k: Any) -> Any:
                return [e async for e in rt.history(*a, **k)]
        else:
            method = getattr(rt, call)
        with pytest.raises(InvalidArgumentError) as caught:
            result = method(*args, **kwargs)
            if asyncio.iscoroutine(result):
                await result
        err = caught.value
        assert err.argument == argument and argument in str(err)
        assert isinstance(err, ValueError) and isinstance(err, TypeError)
        # Nothing bad was stored: every run is still listed and readable.
        listed = await rt.list_runs()
        assert [r.run_id for r in listed] == ["w1"]
        assert (await rt.describe("w1")).status in (RunStatus.RUNNING, RunStatus.WAITING)
        await rt.signal("w1", "go", "ok")
        assert await rt.get_handle("w1").result() == "a:ok"


@pytest.mark.anyio
async def test_list_runs_status_error_names_the_valid_statuses(tmp_path: Path) -> None:
    async with open_runtime(tmp_path / "w.db", workflows=[waits]) as rt:
        with pytest.raises(ValueError, match="unknown run status; use one of PENDING, RUNNING"):
            await rt.list_runs(status="BOGUS")
        assert await rt.list_runs(status=["running", RunStatus.FAILED]) == []


@pytest.mark.anyio
@pytest.mark.parametrize("shape", ["deep", "cyclic"])
async def test_deep_or_self_referencing_payloads_are_payload_errors(tmp_path: Path, shape: str) -> None:
    bad = _deep(100_000) if shape == "deep" else _cyclic()
    async with open_runtime(tmp_path / "w.db", workflows=[waits]) as rt:
        with pytest.raises(PayloadError, match="nested too deeply or contains itself"):
            await rt.start(waits, bad, run_id="bad")  # type: ignore[arg-type]
        await rt.start(waits, "a", run_id="w1")
        with pytest.raises(PayloadError, match="nested too deeply or contains itself"):
            await rt.signal("w1", "go", bad)
        await rt.signal("w1", "go", [[["fine"]]])
        assert await rt.get_handle("w1").result() == "a:[[['fine']]]"
        assert [r.run_id for r in await rt.list_runs()] == ["w1"]


def test_cli_deep_payload_is_a_usage_error_not_an_internal_one(tmp_path: Path) -> None:
    db = str(tmp_path / "w.db")

    async def prepare() -> None:
        async with open_runtime(db, workflows=[waits]) as rt:
            await rt.start(waits, "a", run_id="w1")

    asyncio.run(prepare())
    payload = tmp_path / "deep.json"
    payload.write_text("[" * 100_000 + "]" * 100_000)
    for extra in ([], ["--json"]):
        proc = subprocess.run(
            [str(WAYLINE), "signal", "w1", "go", f"@{payload}", "--db", db, *extra],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 2, proc.stderr
        assert "internal error" not in proc.stderr + proc.stdout
        assert "nested too deeply" in proc.stderr + proc.stdout


def _write_bad_row(db: str, run_id: str, data: bytes, count: int = 1) -> None:
    """Another process writes rows wayline never wrote into the inbox of the live database."""
    script = (
        "import sqlite3, sys\n"
        "con = sqlite3.connect(sys.argv[1], timeout=30)\n"
        "row = (sys.argv[2], bytes.fromhex(sys.argv[3]))\n"
        "con.executemany('INSERT INTO inbox (run_id, message) VALUES (?, ?)', [row] * int(sys.argv[4]))\n"
        "con.commit()\n"
    )
    subprocess.run([sys.executable, "-c", script, db, run_id, data.hex(), str(count)], check=True, timeout=60)


@pytest.mark.anyio
async def test_inbox_poller_survives_a_bad_row_from_another_process(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = str(tmp_path / "w.db")
    caplog.set_level(logging.ERROR, logger="wayline.store")
    async with open_runtime(db, workflows=[waits], inbox_poll_interval=0.02) as rt:
        first = await rt.start(waits, "one", run_id="one")
        second = await rt.start(waits, "two", run_id="two")
        # A garbage row for run "one", then a signal for run "two" from the CLI (yet another
        # process): the poller meets the bad row first.
        _write_bad_row(db, "one", b"\xc1 not msgpack")
        # Well-formed msgpack, but a signal without a name: what `rt.signal(run, None)` stored.
        _write_bad_row(db, "two", msgspec.msgpack.encode({"type": "signal", "name": None, "ts": 0.0}))
        proc = await asyncio.create_subprocess_exec(
            str(WAYLINE), "signal", "two", "go", '"later"', "--db", db, stderr=asyncio.subprocess.PIPE
        )
        _, err = await proc.communicate()
        assert proc.returncode == 0, err
        with anyio.fail_after(20):
            assert await second.result() == "two:later"
        # The poller is alive: a signal sent from another process later reaches run "one" too.
        proc = await asyncio.create_subprocess_exec(str(WAYLINE), "signal", "one", "go", '"also"', "--db", db)
        assert await proc.wait() == 0
        with anyio.fail_after(20):
            assert await first.result() == "one:also"
    set_aside = [r for r in caplog.records if "set aside" in r.getMessage()]
    assert len(set_aside) == 2, [r.getMessage() for r in set_aside]
    assert {"'one'", "'two'"} <= {w for r in set_aside for w in r.getMessage().split() if w.startswith("'")}
    assert sqlite3.connect(db).execute("SELECT count(*) FROM runs").fetchone() == (2,)


@pytest.mark.anyio
async def test_a_schedule_note_of_the_wrong_type_is_refused_and_the_schedule_stays_readable(tmp_path: Path) -> None:
    async with open_runtime(tmp_path / "w.db", workflows=[waits]) as rt:
        handle = await rt.create_schedule("s", waits, "x", every=3600)
        for bad in (lambda: handle.pause(5), lambda: handle.resume(["no"])):  # type: ignore[arg-type]
            with pytest.raises(InvalidArgumentError, match="note must be a string or None"):
                await bad()
        await handle.pause("maintenance")
        info = await handle.describe()
        assert info.paused and [s.schedule_id for s in await rt.list_schedules()] == ["s"]


@pytest.mark.anyio
async def test_the_poller_moves_past_more_bad_rows_than_it_reads_at_once(tmp_path: Path) -> None:
    db = str(tmp_path / "w.db")
    async with open_runtime(db, workflows=[waits], inbox_poll_interval=0.02) as rt:
        run = await rt.start(waits, "one", run_id="one")
        _write_bad_row(db, "one", b"\xc1", count=2500)  # the poller reads 1,000 rows at a time
        proc = await asyncio.create_subprocess_exec(str(WAYLINE), "signal", "one", "go", '"through"', "--db", db)
        assert await proc.wait() == 0
        with anyio.fail_after(20):
            assert await run.result() == "one:through"


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"max_attempts": "3"}, "max_attempts"),
        ({"max_attempts": 2.5}, "max_attempts"),
        ({"interval": None}, "interval"),
        ({"backoff_rate": "2"}, "backoff_rate"),
        ({"max_delay": "1m"}, "max_delay"),
        ({"non_retryable": ValueError}, "non_retryable"),
        ({"non_retryable": (42,)}, "non_retryable"),
    ],
)
def test_a_retry_policy_of_the_wrong_types_is_refused(kwargs: dict[str, Any], argument: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        RetryPolicy(**kwargs)
    assert caught.value.argument == argument
    assert RetryPolicy(non_retryable=[ValueError, "Timeout"]).non_retryable == (ValueError, "Timeout")  # type: ignore[arg-type]


@workflow(name="bad_wait")
async def bad_wait(ctx: RunContext, name: Any) -> Any:
    return await ctx.wait_signal(name)


@workflow(name="bad_sleep")
async def bad_sleep(ctx: RunContext, seconds: Any) -> None:
    await ctx.sleep(seconds)


@pytest.mark.anyio
@pytest.mark.parametrize(("wf", "value", "argument"), [(bad_wait, 5, "name"), (bad_sleep, "1h", "seconds")])
async def test_bad_arguments_in_a_workflow_body_fail_the_run_precisely(
    tmp_path: Path, wf: Any, value: Any, argument: str
) -> None:
    db = tmp_path / "w.db"
    async with open_runtime(db, workflows=[wf]) as rt:
        with pytest.raises(RunFailed) as caught:
            await (await rt.start(wf, value, run_id="r")).result()
    assert caught.value.error == "InvalidArgumentError" and f"{argument} must be" in (caught.value.cause or "")
    async with open_runtime(db, workflows=[wf]) as rt:  # the run is still readable, and listed
        assert [r.status for r in await rt.list_runs()] == [RunStatus.FAILED]
