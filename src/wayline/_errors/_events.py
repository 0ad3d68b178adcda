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


class RateLimitedError(WaylineError):
    """A run was not started: its workflow's `RateLimit` allowed no more starts for its key
    in the current period (the start is dropped, not queued; try again after
    ``retry_after`` seconds, or use a `Concurrency` limit to queue runs instead).

    Attributes:
        workflow: the workflow; ``key`` the rate limit's key; ``retry_after`` seconds until
            one more start would be allowed; ``run_id`` the run that was not started.
    """

    def __init__(self, workflow: str, key: str, retry_after: float, run_id: str) -> None:
        self.workflow = workflow
        self.key = key
        self.retry_after = retry_after
        self.run_id = run_id
        for_key = f" for key {key!r}" if key else ""
        super().__init__(
            f"workflow {workflow!r}: run {run_id!r} was not started: its rate limit{for_key} is reached; "
            f"one more start is allowed in {retry_after:.3g}s"
        )
