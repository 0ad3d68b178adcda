"""Errors of events and flow control: waiting for an event in vain, a flow spec that cannot work."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._base import WaylineError


class EventTimeoutError(WaylineError):
    """``ctx.wait_for_event`` waited longer than its timeout; catch it in the workflow to go on.

    Attributes:
        run_id: the waiting run; ``name`` the event it waited for; ``match`` what the event's
            data had to hold; ``timeout`` seconds.
    """

    def __init__(self, run_id: str, name: str, match: Mapping[str, Any] | None, timeout: float | None) -> None:
        self.run_id = run_id
        self.name = name
        self.match = dict(match or {})
        self.timeout = timeout
        matching = f" matching {self.match!r}" if self.match else ""
        after = f" within {timeout:g}s" if timeout is not None else ""
        super().__init__(f"run {run_id!r}: no event {name!r}{matching} arrived{after}")


class FlowSpecError(WaylineError, ValueError):
    """A workflow's flow control (``concurrency=``, ``priority=``) is invalid, or what its
    key or priority function returned for a run is unusable.

    Attributes:
        workflow: the workflow it is declared on; ``run_id`` the run it was computed for.
    """

    def __init__(self, workflow: str, problem: str, *, run_id: str | None = None) -> None:
        self.workflow = workflow
        self.run_id = run_id
        where = f" (run {run_id!r})" if run_id else ""
        super().__init__(f"workflow {workflow!r}{where}: {problem}")
