"""The index of runs an event may cancel (``@workflow(cancel_on=[on_event(...)])``).

When a run of a workflow with ``cancel_on`` is created, the runtime works out, for each of
its cancel-on entries, the event name, the event paths the entry compares (canonical JSON of
the sorted paths, as the event-wait index has them) and the values the run wants there (taken
from its input, canonical JSON in path order), and stores one row per entry: its *cancel
keys*. An accepted event is then looked up in one indexed query: the runtime knows, from its
workflows, which (workflow, paths) pairs listen to the event's name, computes the event's
values at each, and asks for the runs with those keys, without loading any run.

A run's rows are written before the run itself (a crash in between leaves rows for a run
that does not exist, which cancel nothing and go with the next rows written for that id), and
removed when the run ends or is purged. A row of a run that has ended meanwhile is removed
by the dispatcher when its cancel finds the run finished.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Mapping
from typing import Any, NamedTuple, Protocol, runtime_checkable

from ._events import lookup, values_at, wait_key

#: What `path_value` gives for a path the data does not have.
NOT_FOUND = lookup(None, "missing")


class CancelKey(NamedTuple):
    """One cancel-on entry of a run, as indexed.

    Attributes:
        name: the event name that cancels the run.
        paths: the event paths compared, as ``event_wait_key`` makes them (sorted, JSON).
        vals: the values the run wants at those paths (JSON, in path order).
    """

    name: str
    paths: str
    vals: str


class CancelCandidate(NamedTuple):
    """What an event has to offer to the runs of one workflow: its values (``vals``) at the
    ``paths`` a cancel-on entry of ``workflow`` compares."""

    workflow: str
    paths: str
    vals: str


def path_value(data: Any, path: str) -> Any:
    """The value at dotted ``path`` in ``data`` (as ``wait_for_event``'s ``match`` reads
    it), or `NOT_FOUND`."""
    return lookup(data, path)


def cancel_key(name: str, wanted: Mapping[str, Any]) -> CancelKey:
    """The key of a run that wants event ``name`` to have ``wanted[path]`` at each path."""
    paths, vals = wait_key(wanted)
    return CancelKey(name, paths, vals)


def candidate(workflow: str, paths: str, data: Any) -> CancelCandidate | None:
    """What event ``data`` offers the keys of ``workflow`` on ``paths`` (as `CancelKey`
    has them); None if it lacks one of the paths."""
    vals = values_at(data, paths)
    return None if vals is None else CancelCandidate(workflow, paths, vals)


@runtime_checkable
class CancelKeyStore(Protocol):
    """Where a store keeps the cancel keys of runs (``store.cancel_keys``)."""

    async def set_cancel_keys(self, run_id: str, workflow: str, keys: Collection[CancelKey]) -> None:
        """Make ``keys`` the cancel keys of ``run_id`` as a run of ``workflow``, replacing
        the ones it had for that workflow (one transaction)."""
        ...

    async def cancel_targets(self, name: str, candidates: Collection[CancelCandidate]) -> list[str]:
        """The runs (sorted, each once) with a key for event ``name`` that one of
        ``candidates`` matches (same workflow, paths and values)."""
        ...

    async def remove_cancel_keys(self, run_ids: Collection[str], workflow: str | None = None) -> None:
        """Forget the cancel keys of ``run_ids`` (only those for ``workflow``, if given)."""
        ...


#: Candidates per query: a bound on the statement's size (each is four parameters).
CANDIDATES_PER_QUERY = 200


def batches(candidates: Collection[CancelCandidate]) -> list[list[CancelCandidate]]:
    items = sorted(set(candidates))
    return [items[i : i + CANDIDATES_PER_QUERY] for i in range(0, len(items), CANDIDATES_PER_QUERY)]


class MemoryCancelKeys:
    """`CancelKeyStore` for `MemoryStore`: the runs of each key, and the keys of each run
    (so that writing or removing one run's keys costs what it has, not what all runs have)."""

    def __init__(self, check: Callable[[], None]) -> None:
        self._check = check
        self._runs: dict[tuple[str, str, str, str], set[str]] = {}  # (name, paths, vals, workflow) -> runs
        self._keys: dict[str, set[tuple[str, str, str, str]]] = {}  # run -> its keys

    def _drop(self, run_id: str, workflow: str | None) -> None:
        keys = self._keys.get(run_id, set())
        for key in [k for k in keys if workflow is None or k[3] == workflow]:
            keys.discard(key)
            runs = self._runs[key]
            runs.discard(run_id)
            if not runs:
                del self._runs[key]
        if not keys:
            self._keys.pop(run_id, None)

    async def set_cancel_keys(self, run_id: str, workflow: str, keys: Collection[CancelKey]) -> None:
        self._check()
        await asyncio.sleep(0)  # as a commit would
        self._drop(run_id, workflow)
        for k in keys:
            key = (k.name, k.paths, k.vals, workflow)
            self._runs.setdefault(key, set()).add(run_id)
            self._keys.setdefault(run_id, set()).add(key)

    async def cancel_targets(self, name: str, candidates: Collection[CancelCandidate]) -> list[str]:
        self._check()
        found: set[str] = set()
        for c in candidates:
            found |= self._runs.get((name, c.paths, c.vals, c.workflow), set())
        return sorted(found)

    async def remove_cancel_keys(self, run_ids: Collection[str], workflow: str | None = None) -> None:
        self._check()
        for run_id in run_ids:
            self._drop(run_id, workflow)

    def forget(self, run_ids: Collection[str]) -> None:
        """Drop the rows of purged runs (the memory store's purge, in its own step)."""
        for run_id in run_ids:
            self._drop(run_id, None)
