"""Run metrics through the OpenTelemetry metrics API: counters and histograms recorded as runs
go, and gauges read from each open runtime's `RuntimeStatistics` when a reader collects."""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Protocol

from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from .._statistics import RuntimeStatistics
from ._names import OUTCOME, STEP, WORKFLOW


class StatisticsSource(Protocol):
    """An open runtime, as the gauges read it."""

    def statistics(self) -> RuntimeStatistics: ...


class Metrics:
    """The instruments of one meter provider, shared by every runtime using it (an SDK meter
    hands back the first instrument of a name, callbacks and all)."""

    def __init__(self, provider: MeterProvider) -> None:
        meter = provider.get_meter("wayline")
        self.sources: weakref.WeakSet[StatisticsSource] = weakref.WeakSet()
        self.runs_started = meter.create_counter(
            "wayline.runs.started", unit="{run}", description="Runs started (rt.start created a new run)"
        )
        self.runs_finished = meter.create_counter(
            "wayline.runs.finished",
            unit="{run}",
            description="Runs that ended, by wayline.status (SUCCEEDED, FAILED, CANCELLED)",
        )
        self.step_duration = meter.create_histogram(
            "wayline.step.duration",
            unit="s",
            description="Duration of step attempts (runtime clock), by step and wayline.outcome",
        )
        self.step_attempts = meter.create_counter(
            "wayline.step.attempts",
            unit="{attempt}",
            description="Step attempts, by step and wayline.outcome (succeeded, retried, failed)",
        )
        self.passivated = meter.create_up_down_counter(
            "wayline.actors.passivated",
            unit="{run}",
            description="Runs this process dropped from memory while waiting and has not reloaded",
        )
        meter.create_observable_gauge(
            "wayline.actors.live", [self._observe_live], unit="{actor}", description="Run actors in memory"
        )
        meter.create_observable_gauge(
            "wayline.mailbox.depth",
            [self._observe_mailboxes],
            unit="{message}",
            description="Messages queued in the mailboxes of live runs (total)",
        )
        meter.create_observable_gauge(
            "wayline.mailbox.depth.max",
            [self._observe_deepest],
            unit="{message}",
            description="The deepest mailbox of a live run",
        )

    def step(self, workflow: str, step: str, seconds: float, outcome: str) -> None:
        """One step attempt ended (``outcome``: succeeded, retried or failed)."""
        attributes = {WORKFLOW: workflow, STEP: step, OUTCOME: outcome}
        self.step_duration.record(max(0.0, seconds), attributes)
        self.step_attempts.add(1, attributes)

    def _statistics(self) -> list[RuntimeStatistics]:
        return [source.statistics() for source in list(self.sources)]

    def _observe_live(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(sum(s.live_runs for s in self._statistics()))]

    def _observe_mailboxes(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(sum(s.mailbox_depth for s in self._statistics()))]

    def _observe_deepest(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(max((s.mailbox_depth_max for s in self._statistics()), default=0))]


_metrics: weakref.WeakKeyDictionary[MeterProvider, Metrics] = weakref.WeakKeyDictionary()


def metrics_for(provider: MeterProvider) -> Metrics:
    found = _metrics.get(provider)
    if found is None:
        found = _metrics[provider] = Metrics(provider)
    return found
