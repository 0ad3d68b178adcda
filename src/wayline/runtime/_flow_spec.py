"""`Concurrency`, and the ``priority=`` of a workflow: flow control as declared.

Below the definitions (``@workflow(concurrency=..., priority=...)``): what a spec is, and
the labels it gives one run (its group, key and priority), computed from the run's input
(or, for a run an event started, the `Event`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from .._errors import FlowSpecError

#: Priorities are ints in this range (higher starts first); outside it is an error, so that
#: one workflow cannot starve every other by returning a huge number.
MIN_PRIORITY = -100
MAX_PRIORITY = 100

#: The group of ``scope="key"`` limits: every workflow using one key shares its slots.
SHARED = "*"


@dataclass(frozen=True, slots=True)
class Concurrency:
    """At most ``limit`` runs of the workflow execute at once per key, across every worker
    on the database; the others wait QUEUED (durably) and start in priority, then arrival
    order, as slots free.

    Attributes:
        limit: runs at once per key (>= 1).
        key: a plain function of the run's input (for a run started by an event, the
            `Event`) whose result (made a string) is the key; None: one key for all runs.
        scope: ``"workflow"``: the limit counts this workflow's runs; ``"key"``: the runs of
            every workflow with a ``scope="key"`` limit and the same key share the slots.
        count_waiting: True (the default): a run keeps its slot while it waits (sleeps, waits
            for a signal, callback, event or child run). False: a run gives its slot back once
            its wait is durable, and when the wait ends it queues for a slot again, behind the
            runs queued for its key (priority, then arrival order), before it goes on. A cancel
            does not wait for a slot. ``describe`` of a woken run waiting for its slot says so.
    """

    limit: int
    key: Callable[[Any], Any] | None = None
    scope: Literal["workflow", "key"] = "workflow"
    count_waiting: bool = True

    def check(self, workflow: str) -> None:
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1:
            raise FlowSpecError(workflow, f"Concurrency limit must be an int >= 1, got {self.limit!r}")
        if self.key is not None and (not callable(self.key) or inspect.iscoroutinefunction(self.key)):
            raise FlowSpecError(workflow, f"Concurrency key must be a plain function of the input, got {self.key!r}")
        if self.scope not in ("workflow", "key"):
            raise FlowSpecError(workflow, f"Concurrency scope must be 'workflow' or 'key', got {self.scope!r}")
        if not isinstance(self.count_waiting, bool):
            raise FlowSpecError(
                workflow, f"Concurrency count_waiting must be True or False, got {self.count_waiting!r}"
            )


@dataclass(frozen=True, slots=True)
class Singleton:
    """One run per key at a time.

    Attributes:
        key: a plain function of the run's input (for a run started by an event, the
            `Event`); None: one run of the workflow at a time.
        mode: what a new run does while another of its key goes on: ``"skip"``: it ends
            CANCELLED at once, never started (its error says which run held the key);
            ``"cancel"``: the run going on is cancelled, and the new one starts once it ended.
    """

    key: Callable[[Any], Any] | None = None
    mode: Literal["skip", "cancel"] = "skip"

    def check(self, workflow: str) -> None:
        if self.key is not None and (not callable(self.key) or inspect.iscoroutinefunction(self.key)):
            raise FlowSpecError(workflow, f"Singleton key must be a plain function of the input, got {self.key!r}")
        if self.mode not in ("skip", "cancel"):
            raise FlowSpecError(workflow, f"Singleton mode must be 'skip' or 'cancel', got {self.mode!r}")


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``limit`` runs start per ``period`` seconds per key (a sliding window); a start
    beyond it is dropped, and the caller learns it: ``rt.start`` raises `RateLimitedError`,
    and ``rt.send_event`` lists the workflow in ``EventSent.rate_limited``.

    Attributes:
        limit: starts per period (>= 1); ``period``: seconds (> 0).
        key: a plain function of the input (or the `Event`); None: one key for all runs.
    """

    limit: int
    period: float
    key: Callable[[Any], Any] | None = None

    def check(self, workflow: str) -> None:
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1:
            raise FlowSpecError(workflow, f"RateLimit limit must be an int >= 1, got {self.limit!r}")
        if isinstance(self.period, bool) or not isinstance(self.period, (int, float)) or not self.period > 0:
            raise FlowSpecError(workflow, f"RateLimit period must be seconds > 0, got {self.period!r}")
        check_key_function(workflow, "RateLimit key", self.key)


def _seconds(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and value > 0 and value != float("inf")


@dataclass(frozen=True, slots=True)
class Throttle:
    """At most ``limit`` runs start per ``period`` seconds per key; the starts beyond it are
    QUEUED (durably), never dropped, and start in priority, then arrival order as the pace
    allows.

    Starts are spread evenly, ``period / limit`` seconds apart (the generic cell rate
    algorithm); after a quiet spell, ``burst`` more may start at once. In any window of
    ``period`` seconds at most ``limit + burst`` runs start. (Inngest's ``burst`` lets
    ``limit + burst`` start at once; here it is ``1 + burst``, which keeps that window bound.)

    Attributes:
        limit: starts per period (an int >= 1); ``period``: seconds (> 0).
        burst: extra starts allowed at once (an int >= 0).
        key: a plain function of the input (or the `Event`); None: one pace for all runs.
    """

    limit: int
    period: float
    burst: int = 0
    key: Callable[[Any], Any] | None = None

    def check(self, workflow: str) -> None:
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1:
            raise FlowSpecError(workflow, f"Throttle limit must be an int >= 1, got {self.limit!r}")
        if not _seconds(self.period):
            raise FlowSpecError(workflow, f"Throttle period must be seconds > 0 (an int or float), got {self.period!r}")
        if isinstance(self.burst, bool) or not isinstance(self.burst, int) or self.burst < 0:
            raise FlowSpecError(
                workflow, f"Throttle burst must be an int >= 0 (extra starts at once), got {self.burst!r}"
            )
        check_key_function(workflow, "Throttle key", self.key)


@dataclass(frozen=True, slots=True)
class Debounce:
    """A burst of starts (or event triggers) for one key makes ONE run, with the input of the
    last start (for a trigger, the last `Event`), started ``period`` seconds after the last
    start, or ``max_wait`` seconds after the first, whichever comes first.

    The first start creates the run, QUEUED (``describe`` says until when); each later start
    within the burst replaces its input and pushes its start back, and ``rt.start`` returns
    the handle of that pending run (not a run of the id it was given), as
    ``EventSent.run_ids`` names it for an event.

    Attributes:
        period: seconds of quiet (> 0) after which the run starts.
        key: a plain function of the input (or the `Event`); None: one debounce for all runs.
        max_wait: seconds (>= ``period``) after the first start at which the run starts even
            if starts keep coming; None: no cap.
    """

    period: float
    key: Callable[[Any], Any] | None = None
    max_wait: float | None = None

    def check(self, workflow: str) -> None:
        if not _seconds(self.period):
            raise FlowSpecError(workflow, f"Debounce period must be seconds > 0 (an int or float), got {self.period!r}")
        if self.max_wait is not None:
            if not _seconds(self.max_wait):
                raise FlowSpecError(workflow, f"Debounce max_wait must be seconds > 0 or None, got {self.max_wait!r}")
            if self.max_wait < self.period:
                raise FlowSpecError(
                    workflow,
                    f"Debounce max_wait ({self.max_wait:g}s) is shorter than its period ({self.period:g}s): every "
                    "run would start at max_wait. Make max_wait >= period, or leave it out",
                )
        check_key_function(workflow, "Debounce key", self.key)


class FlowSpec:
    """A workflow's flow control, checked: what `labels` gives each run."""

    __slots__ = ("concurrency", "debounce", "priority", "rate_limit", "singleton", "throttle", "workflow")

    def __init__(
        self,
        workflow: str,
        concurrency: Concurrency | None,
        priority: Callable[[Any], Any] | None,
        singleton: Singleton | None = None,
        rate_limit: RateLimit | None = None,
        throttle: Throttle | None = None,
        debounce: Debounce | None = None,
    ) -> None:
        if throttle is not None:
            if not isinstance(throttle, Throttle):
                raise FlowSpecError(
                    workflow, f"throttle= takes Throttle(limit, period, burst=..., key=...), got {throttle!r}"
                )
            throttle.check(workflow)
        if debounce is not None:
            if not isinstance(debounce, Debounce):
                raise FlowSpecError(
                    workflow, f"debounce= takes Debounce(period, key=..., max_wait=...), got {debounce!r}"
                )
            debounce.check(workflow)
            if rate_limit is not None:
                raise FlowSpecError(
                    workflow,
                    "declare debounce= or rate_limit=, not both: a debounced burst is one start already (to space "
                    "the debounced runs out, use throttle=)",
                )
        if rate_limit is not None:
            if not isinstance(rate_limit, RateLimit):
                raise FlowSpecError(
                    workflow, f"rate_limit= takes RateLimit(limit, period, key=...), got {rate_limit!r}"
                )
            rate_limit.check(workflow)
        if singleton is not None:
            if not isinstance(singleton, Singleton):
                raise FlowSpecError(workflow, f"singleton= takes Singleton(key=..., mode=...), got {singleton!r}")
            singleton.check(workflow)
            if concurrency is not None:
                raise FlowSpecError(
                    workflow, "declare concurrency= or singleton=, not both (a singleton is a limit of one per key)"
                )
            concurrency = Concurrency(1, key=singleton.key)
        if concurrency is not None:
            if not isinstance(concurrency, Concurrency):
                raise FlowSpecError(workflow, f"concurrency= takes Concurrency(limit, key=...), got {concurrency!r}")
            concurrency.check(workflow)
        if priority is not None and (not callable(priority) or inspect.iscoroutinefunction(priority)):
            raise FlowSpecError(workflow, f"priority= must be a plain function of the input, got {priority!r}")
        if priority is not None and concurrency is None and throttle is None:
            raise FlowSpecError(
                workflow,
                "priority= orders runs queued by a limit; declare concurrency=Concurrency(...) or "
                "throttle=Throttle(...) too",
            )
        self.workflow = workflow
        self.concurrency = concurrency
        self.priority = priority
        self.singleton = singleton
        self.rate_limit = rate_limit
        self.throttle = throttle
        self.debounce = debounce

    def key_of(self, fn: Callable[[Any], Any] | None, subject: Any, run_id: str, what: str) -> str:
        """A key function's key for ``subject`` ("" without one); `FlowSpecError` if it raises."""
        if fn is None:
            return ""
        try:
            return str(fn(subject))
        except Exception as exc:
            raise FlowSpecError(self.workflow, f"its {what} raised {type(exc).__name__}: {exc}", run_id=run_id) from exc

    def labels(self, subject: Any, run_id: str) -> tuple[str, str, int, int]:
        """(group, key, priority, limit) of a run on ``subject``.

        Raises:
            FlowSpecError: the key or priority function raised, or the priority is not an int
                in range.
        """
        spec = self.concurrency
        assert spec is not None
        group = self.workflow if spec.scope == "workflow" else SHARED
        key = ""
        if spec.key is not None:
            try:
                key = str(spec.key(subject))
            except Exception as exc:
                raise FlowSpecError(
                    self.workflow, f"its Concurrency key raised {type(exc).__name__}: {exc}", run_id=run_id
                ) from exc
        return group, key, self.priority_of(subject, run_id), spec.limit

    def priority_of(self, subject: Any, run_id: str) -> int:
        """The run's priority (0 without ``priority=``); `FlowSpecError` if out of range."""
        priority = 0
        if self.priority is not None:
            try:
                priority = self.priority(subject)
            except Exception as exc:
                raise FlowSpecError(
                    self.workflow, f"its priority function raised {type(exc).__name__}: {exc}", run_id=run_id
                ) from exc
            if isinstance(priority, bool) or not isinstance(priority, int):
                raise FlowSpecError(self.workflow, f"priority must be an int, got {priority!r}", run_id=run_id)
            if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
                raise FlowSpecError(
                    self.workflow,
                    f"priority {priority} is out of range: use {MIN_PRIORITY}..{MAX_PRIORITY} (higher starts first)",
                    run_id=run_id,
                )
        return priority


def idempotent_run_id(workflow: str, key: Callable[[Any], Any], subject: Any) -> str:
    """The run id ``idempotency_key=`` gives a run on ``subject``: one run per key, for as
    long as the run is kept.

    Raises:
        FlowSpecError: the key function raised, or returned None or an empty string.
    """
    try:
        value = key(subject)
    except Exception as exc:
        raise FlowSpecError(workflow, f"its idempotency_key raised {type(exc).__name__}: {exc}") from exc
    if value is None or value == "":
        raise FlowSpecError(workflow, f"its idempotency_key returned {value!r}; return a non-empty str or number")
    return f"{workflow}@key:{value}"


def check_key_function(workflow: str, what: str, fn: Any) -> None:
    if fn is not None and (not callable(fn) or inspect.iscoroutinefunction(fn)):
        raise FlowSpecError(workflow, f"{what} must be a plain function of the input, got {fn!r}")
