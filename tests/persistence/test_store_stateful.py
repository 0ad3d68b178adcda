"""Hypothesis stateful test: each store behaves like a trivial in-memory model."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from _postgres import SKIP_REASON, fresh_database, reachable
from wayline.persistence import (
    MemoryStore,
    RunRecord,
    RunStarted,
    RunStatus,
    SQLiteStore,
    StepSucceeded,
    Store,
)

RUN_IDS = st.sampled_from([f"r{i}" for i in range(5)])
WORKFLOWS = st.sampled_from(["a", "b"])
STATUSES = st.sampled_from(list(RunStatus))
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)


class StoreModel(RuleBasedStateMachine):
    kind = "memory"

    def __init__(self) -> None:
        super().__init__()
        self.runner = asyncio.Runner()
        self.tmp = tempfile.mkdtemp(prefix="wayline-stateful-")
        self.database = contextlib.ExitStack()
        self.store: Store
        if self.kind == "postgres":
            from wayline.persistence import PostgresStore

            self.store = PostgresStore(self.database.enter_context(fresh_database()))
        else:
            self.store = MemoryStore() if self.kind == "memory" else SQLiteStore(Path(self.tmp) / "s.db")
        self.run(self.store.start)
        self.records: dict[str, RunRecord] = {}
        self.history: dict[str, list[Any]] = {}

    def run(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        async def call() -> Any:  # store methods return awaitables (not always coroutines)
            return await method(*args, **kwargs)  # ... and may need the running loop at call time

        return self.runner.run(call())

    def teardown(self) -> None:
        try:
            self.run(self.store.close)
        finally:
            self.runner.close()
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.database.close()

    @rule(
        run_id=RUN_IDS,
        workflow=WORKFLOWS,
        status=STATUSES,
        created=st.integers(0, 3),
        inp=JSONISH,
        with_event=st.booleans(),
    )
    def create(self, run_id: str, workflow: str, status: RunStatus, created: int, inp: Any, with_event: bool) -> None:
        record = RunRecord(
            run_id=run_id,
            workflow=workflow,
            status=status,
            created_at=float(created),
            input=inp,
            history_seq=int(with_event),
        )
        events = [RunStarted(ts=float(created), workflow=workflow, version="1", input=inp)] if with_event else []
        got = self.run(self.store.create_run, record, events)
        if run_id in self.records:
            assert got == self.records[run_id]
        else:
            assert got is None
            self.records[run_id] = record
            self.history[run_id] = list(events)

    @rule(run_id=RUN_IDS, status=STATUSES, value=JSONISH, n_events=st.integers(0, 3))
    def checkpoint(self, run_id: str, status: RunStatus, value: Any, n_events: int) -> None:
        old = self.records.get(run_id)
        if old is None:
            return
        events = [
            StepSucceeded(ts=1.0, step=f"s{i}", index=old.steps + i, attempt=1, result=value) for i in range(n_events)
        ]
        new = RunRecord(
            run_id=run_id,
            workflow=old.workflow,
            status=status,
            input=old.input,
            created_at=old.created_at,
            vars={"v": value},
            steps=old.steps + n_events,
            history_seq=old.history_seq + (1 if events else 0),
        )
        self.run(self.store.checkpoint, new, events)
        self.records[run_id] = new
        self.history[run_id].extend(events)

    @rule(run_id=RUN_IDS)
    def get(self, run_id: str) -> None:
        assert self.run(self.store.get_run, run_id) == self.records.get(run_id)

    @rule(run_id=RUN_IDS)
    def history_matches(self, run_id: str) -> None:
        assert self.run(self.store.get_history, run_id) == self.history.get(run_id, [])

    @rule(
        statuses=st.none() | st.sets(STATUSES),
        workflow=st.none() | WORKFLOWS,
        since=st.none() | st.sampled_from([0.0, 1.5, 3.0, 4.0]),
        newest_first=st.booleans(),
        limit=st.none() | st.integers(0, 6),
    )
    def list_runs(
        self,
        statuses: set[RunStatus] | None,
        workflow: str | None,
        since: float | None,
        newest_first: bool,
        limit: int | None,
    ) -> None:
        got = self.run(
            self.store.list_runs,
            statuses=statuses,
            workflow=workflow,
            since=since,
            newest_first=newest_first,
            limit=limit,
        )
        expected = sorted(
            (
                r
                for r in self.records.values()
                if (statuses is None or r.status in statuses)
                and (workflow is None or r.workflow == workflow)
                and (since is None or r.created_at >= since)
            ),
            key=lambda r: (r.created_at, r.run_id),
            reverse=newest_first,
        )
        if limit is not None:
            expected = expected[:limit]
        assert got == expected

    @invariant()
    def nothing_pending(self) -> None:
        assert self.store.pending == 0


class SQLiteStoreModel(StoreModel):
    kind = "sqlite"


class PostgresStoreModel(StoreModel):
    kind = "postgres"


_SETTINGS = settings(max_examples=25, stateful_step_count=15, deadline=None)
TestMemoryStoreAgainstModel = StoreModel.TestCase
TestMemoryStoreAgainstModel.settings = _SETTINGS
TestSQLiteStoreAgainstModel = SQLiteStoreModel.TestCase
TestSQLiteStoreAgainstModel.settings = _SETTINGS
TestPostgresStoreAgainstModel = pytest.mark.skipif(not reachable(), reason=SKIP_REASON)(
    PostgresStoreModel.TestCase
)
TestPostgresStoreAgainstModel.settings = _SETTINGS
