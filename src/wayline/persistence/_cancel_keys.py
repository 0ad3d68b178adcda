"""The index of runs an event may cancel (``@workflow(cancel_on=[on_event(...)])``).

When a run of a workflow with ``cancel_on`` is created, the runtime works out, for each of
its cancel-on entries, the event name, the event paths the entry compares (canonical JSON of
the sorted paths, as the event-wait index has them) and the values the run wants there (taken
from its input, canonical JSON in path order): its *cancel keys*. They travel in the run's
metadata (entry ``wayline.cancel_keys``, `encode_keys`), so they are written with the run
itself, and the store indexes them from there: in the transaction that creates the run (or
redrives it), and removes them in the one that finishes it or purges it (on SQLite and
PostgreSQL by triggers on the runs table). An accepted event is then looked up in one indexed
query: the runtime knows, from its workflows, which (workflow, paths) pairs listen to the
event's name, computes the event's values at each, and asks for the runs with those keys,
without loading any run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

from ._events import lookup, values_at, wait_key
from ._records import RunRecord

#: The metadata entry that carries a run's cancel keys (`encode_keys`).
META_KEY = "wayline.cancel_keys"

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


def encode_keys(keys: Sequence[CancelKey]) -> str:
    """Keys as the ``wayline.cancel_keys`` metadata entry holds them: a JSON list of
    ``[name, paths, vals]`` (a string: metadata values are scalars)."""
    return json.dumps([list(k) for k in keys], separators=(",", ":"))


def keys_of_record(record: RunRecord) -> list[CancelKey]:
    """The cancel keys a run's record carries (none if its metadata has no valid entry)."""
    raw = record.metadata.get(META_KEY)
    if not isinstance(raw, str):
        return []
    try:
        return [CancelKey(*map(str, k)) for k in json.loads(raw) if isinstance(k, list) and len(k) == 3]
    except (ValueError, TypeError):
        return []


@runtime_checkable
class CancelKeyStore(Protocol):
    """Where a store keeps the cancel keys of runs (``store.cancel_keys``); it indexes them
    from the runs' metadata as the runs are written."""

    async def cancel_targets(self, name: str, candidates: Collection[CancelCandidate]) -> list[str]:
        """The runs (sorted, each once) with a key for event ``name`` that one of
        ``candidates`` matches (same workflow, paths and values)."""
        ...


#: Candidates per query: a bound on the statement's size (each is four parameters).
CANDIDATES_PER_QUERY = 200


def batches(candidates: Collection[CancelCandidate]) -> list[list[CancelCandidate]]:
    items = sorted(set(candidates))
    return [items[i : i + CANDIDATES_PER_QUERY] for i in range(0, len(items), CANDIDATES_PER_QUERY)]


class MemoryCancelKeys:
    """`CancelKeyStore` for `MemoryStore`: the runs of each key, and the keys of each run
    (so that indexing or dropping one run's keys costs what it has, not what all runs have)."""

    def __init__(self, check: Callable[[], None]) -> None:
        self._check = check
        self._runs: dict[tuple[str, str, str, str], set[str]] = {}  # (name, paths, vals, workflow) -> runs
        self._keys: dict[str, set[tuple[str, str, str, str]]] = {}  # run -> its keys

    def _drop(self, run_id: str) -> None:
        for key in self._keys.pop(run_id, ()):
            runs = self._runs[key]
            runs.discard(run_id)
            if not runs:
                del self._runs[key]

    def written(self, record: RunRecord, created: bool) -> None:
        """Keep the index in step with a run just written (as the other stores' triggers
        do): its keys indexed when it is created or redriven, removed when it finishes."""
        if record.status.finished:
            self._drop(record.run_id)
        elif (created or record.run_id not in self._keys) and META_KEY in record.metadata:
            for k in keys_of_record(record):
                key = (k.name, k.paths, k.vals, record.workflow)
                self._runs.setdefault(key, set()).add(record.run_id)
                self._keys.setdefault(record.run_id, set()).add(key)

    async def cancel_targets(self, name: str, candidates: Collection[CancelCandidate]) -> list[str]:
        self._check()
        found: set[str] = set()
        for c in candidates:
            found |= self._runs.get((name, c.paths, c.vals, c.workflow), set())
        return sorted(found)

    def forget(self, run_ids: Collection[str]) -> None:
        """Drop the rows of purged runs (the memory store's purge, in its own step)."""
        for run_id in run_ids:
            self._drop(run_id)
