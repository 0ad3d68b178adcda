"""No silent coercion of a workflow's input: what the annotation declares comes back exactly
(msgspec's typed decode), the rest is refused at ``rt.start``, as is input for a workflow
that takes none."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from wayline import PayloadError, RunContext, open_runtime, workflow
from wayline.errors import InvalidArgumentError, SignalPayloadError

pytestmark = pytest.mark.anyio

seen: list[Any] = []


class Invoice(msgspec.Struct):
    due: dt.date
    amount: Decimal
    ref: uuid.UUID
    at: dt.datetime


@dataclass
class Refund:
    amount: Decimal
    on: dt.date


@workflow(name="invoice")
async def invoice(ctx: RunContext, inv: Invoice) -> str:
    seen.append(inv)
    return f"{type(inv.due).__name__} {type(inv.amount).__name__} {type(inv.ref).__name__} {type(inv.at).__name__}"


@workflow(name="refund")
async def refund(ctx: RunContext, r: Refund) -> str:
    seen.append(r)
    return f"{r.amount + Decimal('0.01')} {r.on.isoformat()}"


@workflow(name="on_day")
async def on_day(ctx: RunContext, day: dt.date) -> str:
    seen.append(day)
    return (day + dt.timedelta(days=1)).isoformat()


@workflow(name="amounts")
async def amounts(ctx: RunContext, by_sku: dict[str, Decimal]) -> str:
    seen.append(by_sku)
    return str(sum(by_sku.values(), Decimal(0)))


@workflow(name="loose")
async def loose(ctx: RunContext, order: dict[str, Any]) -> Any:
    return order


@workflow(name="untyped")
async def untyped(ctx, order):  # type: ignore[no-untyped-def]
    return order


@workflow(name="no_input")
async def no_input(ctx: RunContext) -> str:
    return "done"


async def test_declared_types_round_trip_exactly(tmp_path: Path) -> None:
    seen.clear()
    ref = uuid.uuid4()
    at = dt.datetime(2026, 12, 7, 9, 30, tzinfo=dt.UTC)
    inv = Invoice(due=dt.date(2026, 12, 31), amount=Decimal("10.10"), ref=ref, at=at)
    async with open_runtime(tmp_path / "w.db", workflows=[invoice, refund, on_day, amounts]) as rt:
        assert await (await rt.start(invoice, inv)).result() == "date Decimal UUID datetime"
        assert (
            await (await rt.start(refund, Refund(Decimal("2.50"), dt.date(2026, 1, 2)))).result() == "2.51 2026-01-02"
        )
        assert await (await rt.start(on_day, dt.date(2026, 2, 28))).result() == "2026-03-01"
        assert await (await rt.start(amounts, {"a": Decimal("0.1"), "b": Decimal("0.2")})).result() == "0.3"
    assert seen == [
        inv,
        Refund(Decimal("2.50"), dt.date(2026, 1, 2)),
        dt.date(2026, 2, 28),
        {"a": Decimal("0.1"), "b": Decimal("0.2")},
    ]


@pytest.mark.parametrize(
    ("wf", "value", "where", "became"),
    [
        (loose, {"amount": Decimal("9.99")}, "input['amount'] is a Decimal", "str"),
        (loose, {"items": [{"on": dt.date(2026, 1, 1)}]}, "input['items'][0]['on'] is a date", "str"),
        (untyped, uuid.UUID(int=7), "input is a UUID", "str"),
        (untyped, {"at": dt.datetime(2026, 1, 1, 12)}, "input['at'] is a datetime", "str"),
    ],
    ids=["decimal-in-dict", "date-deep", "uuid-untyped", "naive-datetime"],
)
async def test_what_would_come_back_as_something_else_is_refused(
    tmp_path: Path, wf: Any, value: Any, where: str, became: str
) -> None:
    async with open_runtime(tmp_path / "w.db", workflows=[loose, untyped]) as rt:
        with pytest.raises(PayloadError) as caught:
            await rt.start(wf, value, run_id="r")
        message = str(caught.value)
        assert where in message and f"receive it as a {became}" in message, message
        assert "declare" in message
        assert await rt.list_runs() == []  # nothing stored


async def test_input_that_does_not_match_the_annotation_is_refused(tmp_path: Path) -> None:
    async with open_runtime(tmp_path / "w.db", workflows=[on_day]) as rt:
        with pytest.raises(PayloadError, match=r"does not match the workflow's annotation date"):
            await rt.start(on_day, "next tuesday")  # type: ignore[arg-type]
        assert await rt.list_runs() == []


async def test_json_like_input_is_accepted_as_before(tmp_path: Path) -> None:
    order = {"id": "o-1", "amount": 9.5, "items": [1, 2.5, None, True], "raw": b"\x00"}
    async with open_runtime(tmp_path / "w.db", workflows=[loose]) as rt:
        assert await (await rt.start(loose, order)).result() == order
        # A tuple travels as a JSON array: not a different value.
        assert await (await rt.start(loose, {"pair": (1, 2)})).result() == {"pair": [1, 2]}


async def test_input_for_a_workflow_that_takes_none_is_refused(tmp_path: Path) -> None:
    async with open_runtime(tmp_path / "w.db", workflows=[no_input]) as rt:
        with pytest.raises(InvalidArgumentError, match="workflow 'no_input' takes none") as caught:
            await rt.start(no_input, {"unexpected": 1}, run_id="n")  # type: ignore[call-overload]
        assert caught.value.argument == "input"
        assert await rt.list_runs() == []
        assert await (await rt.start(no_input)).result() == "done"


class Verdict(msgspec.Struct):
    approved: bool
    on: dt.date


@workflow(name="review")
async def review(ctx: RunContext, doc: str) -> str:
    try:
        verdict = await ctx.wait_signal("verdict", Verdict)
    except SignalPayloadError as exc:
        return f"bad verdict: {exc.signal}"
    return f"{doc}: {verdict.approved} on {verdict.on + dt.timedelta(days=1)}"


async def test_a_signal_payload_is_decoded_as_the_type_waited_for(tmp_path: Path) -> None:
    async with open_runtime(tmp_path / "w.db", workflows=[review]) as rt:
        good = await rt.start(review, "c-1")
        await rt.signal(good.run_id, "verdict", Verdict(True, dt.date(2026, 3, 1)))
        assert await good.result() == "c-1: True on 2026-03-02"
        bad = await rt.start(review, "c-2")
        await rt.signal(bad.run_id, "verdict", {"approved": "maybe"})
        assert await bad.result() == "bad verdict: verdict"
