"""`wayline runs list --where KEY=VALUE --tag T` on a real SQLite file, and `runs show` of
a run's metadata and tags, through the installed executable."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.cli.conftest import Cli, order, settle

from wayline import open_runtime
from wayline.testing import VirtualClock


async def _populate(path: str) -> None:
    clock = VirtualClock()
    async with open_runtime(path, workflows=[order], clock=clock) as rt:
        for i, (customer, amount, tags) in enumerate([("c1", 5, ["vip"]), ("c2", 5, []), ("c1", 7, [])]):
            clock.advance(1)
            await rt.start(order, 1.0, run_id=f"o{i}", metadata={"customer": customer, "amount": amount}, tags=tags)
        await settle(clock)


def make_cli(tmp_path: Path) -> Cli:
    path = str(tmp_path / "runs.db")
    asyncio.run(_populate(path))
    return Cli(path, tmp_path)


def test_where_and_tag_filter_the_listing(tmp_path: Path) -> None:
    cli = make_cli(tmp_path)
    res = cli("runs", "list", "--where", "customer=c1", "--json")
    assert res.code == 0, res.err
    assert [r["run_id"] for r in res.json()] == ["o2", "o0"]
    assert res.json()[1]["metadata"] == {"customer": "c1", "amount": 5} and res.json()[1]["tags"] == ["vip"]
    res = cli("runs", "list", "--where", "customer=c1", "--where", "amount:=5", "--json")
    assert [r["run_id"] for r in res.json()] == ["o0"]
    assert [r["run_id"] for r in cli("runs", "list", "--tag", "vip", "--json").json()] == ["o0"]
    # amount=5 is the string "5": no run has it
    assert cli("runs", "list", "--where", "amount=5").out.strip() == "no runs match"
    shown = cli("runs", "show", "o0")
    fields = {line[:12].strip(): line[12:].strip() for line in shown.out.splitlines()}
    assert fields["metadata"] == '{"customer":"c1","amount":5}' and fields["tags"] == "vip"


def test_bad_where_is_a_usage_error(tmp_path: Path) -> None:
    cli = make_cli(tmp_path)
    for bad, says in (
        ("customer", "is not KEY=VALUE"),
        ("amount:=five", "is not JSON"),
        ("a:=[1]", "number or true/false"),
    ):
        res = cli("runs", "list", "--where", bad)
        assert res.code == 2, res
        assert says in res.err
    res = cli("runs", "list", "--where", "wayline.x=1")
    assert res.code != 0 and "wayline." in res.err
