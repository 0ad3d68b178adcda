"""Run metadata and tags: what users may set, and what a child run inherits.

A run's metadata is one dict, shared by the runtime's own entries (the keys in `RESERVED`,
and any key starting with ``wayline.``) and the user's (``rt.start(..., metadata=...)``,
``ctx.metadata``). Users may read every entry but set only their own; values are str, int,
float or bool, so that every entry is searchable (``rt.list_runs(metadata=...)``, answered
from the store's index, see `wayline.persistence._search`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, MutableMapping, Sequence
from typing import Any

from .._errors import MetadataError
from ..persistence import AnyEvent, RunRecord, RunStarted

#: The runtime's own metadata keys: a child run (``parent_run_id``, ``detached``,
#: ``notify_parent``), a version alias (``alias``) or pin (``pinned``), a schedule's fire (``schedule_id``,
#: ``scheduled_at``, ``fire``), redrives. Spelled out here rather than imported, so this
#: module stays below the modules that set them (tests/runtime/test_metadata.py checks
#: that the lists agree).
RESERVED = frozenset(
    {
        "parent_run_id",
        "detached",
        "notify_parent",
        "alias",
        "pinned",
        "schedule_id",
        "scheduled_at",
        "fire",
        "redrives",
    }
)
PRIVATE_PREFIX = "wayline."
#: Bounds that keep the index small: a key, a string value, a tag.
MAX_KEY = 128
MAX_VALUE = 1024
MAX_ENTRIES = 64


def _check_entry(key: Any, value: Any, run_id: str | None) -> None:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY:
        raise MetadataError(f"key {key!r} must be a non-empty string of at most {MAX_KEY} characters", run_id=run_id)
    if key in RESERVED or key.startswith(PRIVATE_PREFIX):
        raise MetadataError(
            f"key {key!r} is the runtime's own (reserved: {', '.join(sorted(RESERVED))} and 'wayline.*'); "
            "choose another name",
            run_id=run_id,
        )
    if not isinstance(value, (str, int, float, bool)):
        raise MetadataError(
            f"{key!r} is {type(value).__name__} {value!r}: metadata values are str, int, float or bool "
            "(keep structured data in ctx.vars)",
            run_id=run_id,
        )
    if isinstance(value, str) and len(value) > MAX_VALUE:
        raise MetadataError(f"{key!r} is a string of {len(value)} characters; at most {MAX_VALUE}", run_id=run_id)


def check_metadata(metadata: Mapping[str, Any] | None, *, run_id: str | None = None) -> dict[str, Any]:
    """User metadata as given to ``rt.start``, checked; a fresh dict.

    Raises:
        MetadataError: not a mapping, too many entries, a bad key or value.
    """
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise MetadataError(
            f"metadata must be a mapping of str to scalars, got {type(metadata).__name__}", run_id=run_id
        )
    if len(metadata) > MAX_ENTRIES:
        raise MetadataError(f"{len(metadata)} entries; at most {MAX_ENTRIES}", run_id=run_id)
    for key, value in metadata.items():
        _check_entry(key, value, run_id)
    return dict(metadata)


def check_tags(tags: Iterable[str] | None, *, run_id: str | None = None) -> tuple[str, ...]:
    """Tags as given to ``rt.start``, checked, duplicates dropped, in order.

    Raises:
        MetadataError: a tag that is not a non-empty string, or too many.
    """
    if tags is None:
        return ()
    if isinstance(tags, str):
        raise MetadataError(
            f"tags must be a list of strings, got the string {tags!r} (write [{tags!r}])", run_id=run_id
        )
    out = tuple(dict.fromkeys(tags))
    for tag in out:
        if not isinstance(tag, str) or not tag or len(tag) > MAX_KEY:
            raise MetadataError(
                f"tag {tag!r} must be a non-empty string of at most {MAX_KEY} characters", run_id=run_id
            )
    if len(out) > MAX_ENTRIES:
        raise MetadataError(f"{len(out)} tags; at most {MAX_ENTRIES}", run_id=run_id)
    return out


def user_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of a run's metadata that users set (none of the runtime's own)."""
    return {k: v for k, v in metadata.items() if k not in RESERVED and not k.startswith(PRIVATE_PREFIX)}


def child_metadata(
    parent_metadata: Mapping[str, Any],
    parent_tags: Iterable[str] = (),
    metadata: Mapping[str, Any] | None = None,
    tags: Iterable[str] | None = None,
    *,
    run_id: str | None = None,
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The metadata and tags of a run started by another (a child workflow, a state
    machine's child execution, a run started by an event a run sent): the parent's user
    entries (a correlation id set at the top reaches every descendant), overridden by the
    child's own ``metadata``; the parent's tags, then the child's.

    Raises:
        MetadataError: the child's own metadata or tags are invalid.
    """
    merged = {**user_metadata(parent_metadata), **check_metadata(metadata, run_id=run_id)}
    return merged, check_tags([*parent_tags, *(check_tags(tags, run_id=run_id))], run_id=run_id)


def replayed_metadata(record: RunRecord, history: Sequence[AnyEvent]) -> dict[str, Any]:
    """What ``ctx.metadata`` holds when a run's body starts (or starts again to replay): the
    metadata the run was created with, plus the runtime's own entries as they are now (a
    redrive count). The body's own changes come back as it replays them, so it reads the
    same values at the same points each time."""
    started = history[0] if history else None
    if not isinstance(started, RunStarted):
        return dict(record.metadata)  # a run from before RunStarted carried its metadata
    own = {k: v for k, v in record.metadata.items() if k in RESERVED or k.startswith(PRIVATE_PREFIX)}
    return {**started.metadata, **own}


class RunMetadata(MutableMapping[str, Any]):
    """``ctx.metadata``: the run's metadata, as the workflow body sees it.

    Every entry is readable (the runtime's own too, such as ``parent_run_id`` or
    ``schedule_id``); user entries may be set and deleted, and are checkpointed with the
    run's next step and searchable then (``rt.list_runs(metadata={...})``). Setting an entry
    is part of the body's code, so it is set again when the body replays: same value, no
    change.
    """

    __slots__ = ("_data", "_run_id")

    def __init__(self, data: dict[str, Any], run_id: str | None = None) -> None:
        self._data = data
        self._run_id = run_id

    @property
    def data(self) -> dict[str, Any]:
        """The dict the run's snapshot stores (not a copy)."""
        return self._data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        _check_entry(key, value, self._run_id)
        if key not in self._data and len(user_metadata(self._data)) >= MAX_ENTRIES:
            raise MetadataError(f"at most {MAX_ENTRIES} entries", run_id=self._run_id)
        self._data[key] = value

    def __delitem__(self, key: str) -> None:
        if key in RESERVED or key.startswith(PRIVATE_PREFIX):
            raise MetadataError(f"key {key!r} is the runtime's own and cannot be deleted", run_id=self._run_id)
        del self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"RunMetadata({self._data!r})"
