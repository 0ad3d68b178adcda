"""`wayline events send|list`: a client commits the event; the worker starts its runs."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from wayline import Event, RunContext, on_event, open_runtime, workflow

from .conftest import WAYLINE, WORKFLOWS, Cli


@workflow(name="greet", triggers=[on_event("user/joined")])
async def greet(ctx: RunContext, event: Event) -> str:
    return f"hello {event.data['who']} ({ctx.metadata.get('corr')})"


def test_send_then_list_and_a_duplicate_is_told(cli: Cli) -> None:
    res = cli("events", "send", "user/joined", "--data", '{"who": "ana"}', "--id", "j-1", "--metadata", "corr=c9")
    assert res.code == 0, res.err
    assert "event #1 user/joined accepted (id j-1)" in res.out
    dup = cli("events", "send", "user/joined", "--data", '{"who": "bo"}', "--id", "j-1", "--json")
    assert dup.code == 0 and dup.json() == {"id": "j-1", "seq": 1, "duplicate": True}
    listed = cli("events", "list", "--json")
    assert [(e["seq"], e["id"], e["data"], e["metadata"]) for e in listed.json()] == [
        (1, "j-1", {"who": "ana"}, {"corr": "c9"})
    ]
    text = cli("events", "list", "--name", "user/joined")
    assert "SEQ" in text.out and "j-1" in text.out


def test_bad_data_is_a_usage_error(cli: Cli) -> None:
    res = cli("events", "send", "user/joined", "--data", "{nope")
    assert res.code == 2 and "--data is not valid JSON" in res.err
    res = cli("events", "send", "", "--data", "{}")
    assert res.code == 2 and "rt.send_event: name must not be empty" in res.err


@pytest.mark.anyio
async def test_the_worker_starts_the_runs_of_an_event_the_cli_sent(db: str) -> None:
    async with open_runtime(db, workflows=[*WORKFLOWS, greet], inbox_poll_interval=0.02) as rt:
        proc = await asyncio.create_subprocess_exec(
            str(WAYLINE), "events", "send", "user/joined", "--data", '{"who": "cy"}', "--metadata", "corr=k",
            "--db", db, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await proc.communicate()
        assert proc.returncode == 0, err
        seq = (await rt.list_events(name="user/joined"))[-1].seq
        result: Any = await rt.get_handle(f"greet@event:{seq}").result()
        assert result == "hello cy (k)"
