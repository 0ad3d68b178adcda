"""``.waitForTaskToken`` tasks of state machines run by the durable runtime."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from _support import Changes, idle
from wayline import CallbackTokenError, RunFailed, RunStatus, StateMachine, open_runtime
from wayline.testing import VirtualClock

pytestmark = pytest.mark.anyio

sent: list[dict[str, Any]] = []
sending = Changes()  # told of each message sent


async def send_to_queue(payload: dict[str, Any]) -> dict[str, Any]:
    sent.append(payload)
    sending.changed()
    return {"MessageId": f"m{len(sent)}"}  # ignored: the task's result is the callback's output


def machine(timeout: int | None = None, heartbeat: int | None = None) -> StateMachine:
    task: dict[str, Any] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "Parameters": {"QueueUrl": "q", "MessageBody": {"token.$": "$$.Task.Token", "order.$": "$.order"}},
        "ResultPath": "$.approval",
        "Catch": [{"ErrorEquals": ["Rejected"], "ResultPath": "$.rejection", "Next": "Rejected"}],
        "Next": "Done",
    }
    if timeout is not None:
        task["TimeoutSeconds"] = timeout
    if heartbeat is not None:
        task["HeartbeatSeconds"] = heartbeat
    definition = {
        "StartAt": "Ask",
        "States": {
            "Ask": task,
            "Done": {"Type": "Succeed"},
            "Rejected": {"Type": "Pass", "Result": "rejected", "End": True},
        },
    }
    return StateMachine(
        definition, name="approvals", resources={"arn:aws:states:::sqs:sendMessage": send_to_queue}
    )


@pytest.fixture(autouse=True)
def _reset() -> None:
    sent.clear()


async def next_token(count: int = 1) -> str:
    await sending.until(lambda: len(sent) >= count)
    token = sent[-1]["MessageBody"]["token"]
    assert isinstance(token, str)
    return token


async def test_a_task_token_completed_from_outside(db: str) -> None:
    sm = machine()
    async with open_runtime(db, workflows=[sm], clock=VirtualClock()) as rt:
        handle = await rt.start(sm, {"order": 7}, run_id="a")
        token = await next_token()
        assert sent[0]["MessageBody"]["order"] == 7
        await rt.complete_callback(token, {"approved": True})
        assert await handle.result() == {"order": 7, "approval": {"approved": True}}
        with pytest.raises(CallbackTokenError):
            await rt.complete_callback(token, {"approved": False})
        history = [e async for e in rt.history("a")]
        assert token not in repr(history)  # the stored history has the digest instead


async def test_a_failed_task_token_is_caught_by_name(db: str) -> None:
    sm = machine()
    async with open_runtime(db, workflows=[sm], clock=VirtualClock()) as rt:
        handle = await rt.start(sm, {"order": 1}, run_id="f")
        await rt.fail_callback(await next_token(), "Rejected", "no budget")
        assert await handle.result() == "rejected"


async def test_an_uncaught_failure_fails_the_run_with_its_error(db: str) -> None:
    sm = machine()
    async with open_runtime(db, workflows=[sm], clock=VirtualClock()) as rt:
        handle = await rt.start(sm, {"order": 1}, run_id="u")
        await rt.fail_callback(await next_token(), "Broken", "the approver crashed")
        with pytest.raises(RunFailed) as info:
            await handle.result()
        assert (info.value.error, info.value.cause) == ("Broken", "the approver crashed")


@pytest.mark.parametrize(
    ("limit", "heartbeat", "error", "after"),
    [(300, None, "States.Timeout", 300), (None, 60, "States.HeartbeatTimeout", 60)],
)
async def test_task_token_timeouts(db: str, limit: int | None, heartbeat: int | None, error: str, after: int) -> None:
    sm = machine(limit, heartbeat)
    clock = VirtualClock()
    async with open_runtime(db, workflows=[sm], clock=clock) as rt:
        t0 = clock.time()
        handle = await rt.start(sm, {"order": 1}, run_id="t")
        with pytest.raises(RunFailed) as info:
            await handle.result()
        assert info.value.error == error
        assert clock.time() - t0 == pytest.approx(after)


async def test_heartbeats_keep_a_task_alive(db: str) -> None:
    sm = machine(timeout=1000, heartbeat=60)
    clock = VirtualClock()
    async with open_runtime(db, workflows=[sm], clock=clock) as rt:
        handle = await rt.start(sm, {"order": 1}, run_id="h")
        for _ in range(4):  # on the virtual timeline: no polling (see test_callbacks.py)
            await clock.sleep(59)
            await rt.heartbeat(sent[-1]["MessageBody"]["token"])
        await rt.complete_callback(sent[-1]["MessageBody"]["token"], "alive")
        assert (await handle.result())["approval"] == "alive"


async def test_a_task_token_completed_while_the_worker_is_down(tmp_path: Path) -> None:
    sm = machine()
    path = tmp_path / "asl.db"
    async with open_runtime(path, workflows=[sm], clock=VirtualClock()) as rt:
        await rt.start(sm, {"order": 3}, run_id="d")
        token = await next_token()
        await idle(rt)
        assert (await rt.describe("d")).status is RunStatus.WAITING
    async with open_runtime(path, workflows=[], worker=False, inbox_poll_interval=None) as cli:
        await cli.complete_callback(token, "approved offline")
    async with open_runtime(path, workflows=[sm], clock=VirtualClock()) as rt:
        assert (await rt.get_handle("d").result())["approval"] == "approved offline"
    assert len(sent) == 1  # the message was not sent again
    secret = token.rsplit(".", 1)[1].encode()
    for file in tmp_path.iterdir():  # noqa: ASYNC240 - the runtime is closed: nothing to block
        assert secret not in file.read_bytes(), file.name


async def test_a_token_handed_out_before_a_crash_still_completes_the_task(tmp_path: Path) -> None:
    """The process dies while the resource call that hands the token out is still running:
    after the restart the task is invoked again with a new token, and either token answers it."""
    hang = asyncio.Event()

    async def send_then_hang(payload: dict[str, Any]) -> None:
        sent.append(payload)
        sending.changed()
        if len(sent) == 1:
            await hang.wait()  # the first call never returns: the worker goes away meanwhile

    definition = {
        "StartAt": "Ask",
        "States": {
            "Ask": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "Parameters": {"MessageBody": {"token.$": "$$.Task.Token"}},
                "End": True,
            }
        },
    }
    sm = StateMachine(definition, name="hang", resources={"arn:aws:states:::sqs:sendMessage": send_then_hang})
    path = tmp_path / "hang.db"
    async with open_runtime(path, workflows=[sm], clock=VirtualClock()) as rt:
        await rt.start(sm, {}, run_id="h")
        first = await next_token(1)
    async with open_runtime(path, workflows=[sm], clock=VirtualClock()) as rt:
        second = await next_token(2)
        assert second != first
        await rt.complete_callback(first, "answered with the first token")
        assert await rt.get_handle("h").result() == "answered with the first token"
        with pytest.raises(CallbackTokenError):
            await rt.complete_callback(second, "too late")
