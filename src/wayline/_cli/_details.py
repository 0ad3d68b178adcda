"""What ``runs show`` and ``runs list`` say beyond `RunInfo`: a run's waits in words (what it
waits for, and until when) and a state machine's steps, read from the run's stored record.

`RunInfo.waiting_for` holds the runtime's keys (``timer:sleep:2``), which mean nothing to
whoever reads the command's output; and a state machine run journals no steps (it resumes
from its snapshot), so its step count is the number of states it entered, from its history.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ..persistence import CallbackWait, Custom, RetryWait, RunRecord, SignalWait, TimerWait, Wait
from ..runtime import Runtime
from ._time import iso, when


@dataclass(frozen=True)
class WaitText:
    """One thing a run waits for, for people (``text``) and for machines (the rest)."""

    kind: str  # timer | signal | callback | retry | state
    name: str | None  # the signal's name, the step that waits or is retried, the ASL state
    until: float | None  # when it fires or times out (epoch seconds), if it has a deadline
    text: str

    def doc(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "until": iso(self.until), "text": self.text}


@dataclass(frozen=True)
class Detail:
    """What the record adds to a `RunInfo`."""

    waits: tuple[WaitText, ...] = ()
    #: Steps taken: completed steps of a code workflow, states entered by a state machine.
    steps: int | None = None
    state_machine: bool = False


def describe_wait(wait: Wait, now: float) -> WaitText:
    """A stored wait in words: ``signal 'verdict', times out at 2026-... (in 59m 58s)``."""
    due = wait.due
    match wait:
        case TimerWait():
            return WaitText("timer", None, due, f"a timer, due {when(due, now)}" if due else "a timer")
        case SignalWait(signal=signal):
            text = f"signal {signal!r}" + (f", times out at {when(due, now)}" if due else "")
            return WaitText("signal", signal, due, text)
        case RetryWait(activity=step):
            text = f"the retry of step {step!r}" + (f", due {when(due, now)}" if due else "")
            return WaitText("retry", step, due, text)
        case CallbackWait(label=label, deadline=deadline, heartbeat=heartbeat):
            text = f"a callback to {label!r}" if label else "a callback"
            if deadline is not None:
                text += f", times out at {when(deadline, now)}"
            if heartbeat is not None and due is not None:
                text += f", next heartbeat due by {when(due, now)}"
            return WaitText("callback", label or None, deadline if deadline is not None else due, text)
    name = wait.name or None
    text = f"{wait.kind} {name or ''}".strip() + (f", due {when(due, now)}" if due else "")
    return WaitText(wait.kind, name, due, text)


def _asl_wait(state: object, now: float) -> WaitText | None:
    """A state machine in a Wait state: its snapshot holds the state and when it wakes."""
    frame = state.get("frame") if isinstance(state, dict) else None
    if not isinstance(frame, dict) or not isinstance(frame.get("state"), str):
        return None
    wake = frame.get("wake")
    if not isinstance(wake, int | float):
        return None
    return WaitText("state", frame["state"], float(wake), f"Wait state {frame['state']!r}, until {when(wake, now)}")


async def detail(rt: Runtime, rec: RunRecord | None, now: float | None = None) -> Detail:
    """The `Detail` of one run from its record (``None``: the run is gone; nothing to add)."""
    if rec is None:
        return Detail()
    now = time.time() if now is None else now
    waits = [describe_wait(w, now) for w in rec.waits]
    machine = isinstance(rec.state, dict)
    if not machine:
        return Detail(tuple(waits), rec.steps)
    asl = _asl_wait(rec.state, now) if not rec.status.finished else None
    if asl is not None:
        waits.insert(0, asl)
    entered = sum(1 for e in await rt.store.get_history(rec.run_id) if _entered_state(e))
    return Detail(tuple(waits), entered, state_machine=True)


def _entered_state(event: object) -> bool:
    return isinstance(event, Custom) and event.name.endswith("StateEntered")


async def details(rt: Runtime, run_ids: list[str]) -> dict[str, Detail]:
    """`detail` of each run, read one by one (a listing shows at most ``--limit`` runs)."""
    now = time.time()
    return {run_id: await detail(rt, await rt.store.get_run(run_id), now) for run_id in run_ids}
