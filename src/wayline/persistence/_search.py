"""Searching runs by metadata and tags: what the stores index, and how a filter matches.

Each store keeps a ``run_metadata`` table keyed (key, value, created_at, run_id): one row per
searchable metadata entry of a run, and one per tag (key ``""``, the tag as value). A listing
filtered on metadata or a tag reads that index in the listing order and stops at its limit,
instead of decoding every snapshot. The rows are written by the database itself (triggers on
the ``meta`` column of ``runs``, the JSON of `search_terms`), so a create or a checkpoint only
hands over one more column, and a checkpoint that does not change the metadata rewrites no
index row.

Searchable: metadata values that are str, int, float or bool, under keys that do not start
with ``wayline.``. Other values are kept in the snapshot but not indexed. Numbers compare as
numbers (1 matches 1.0) and booleans as 0 and 1, in every store.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from .._errors import MetadataError
from ._records import RunRecord

#: The key under which tags are indexed (metadata keys are never empty).
TAG_KEY = ""
#: Keys with this prefix are the runtime's own bookkeeping: kept, never indexed.
PRIVATE_PREFIX = "wayline."
SCALARS = (str, int, float, bool)

_json = msgspec.json.Encoder()


def search_terms(record: RunRecord) -> str | None:
    """The ``meta`` column of a run's row: ``[metadata, tags]`` as JSON, None if both are
    empty (most runs: then nothing is encoded and nothing indexed)."""
    if not record.metadata and not record.tags:
        return None
    return _json.encode([record.metadata, record.tags]).decode()


def matches(record: RunRecord, metadata: Mapping[str, Any] | None, tag: str | None) -> bool:
    """Whether ``record`` passes a listing's metadata and tag filters (for stores that scan)."""
    if tag is not None and tag not in record.tags:
        return False
    if metadata:
        for key, value in metadata.items():
            if key.startswith(PRIVATE_PREFIX) or key not in record.metadata:
                return False
            found = record.metadata[key]
            # Python's equality, as the databases compare: True matches 1, 1.0 matches 1.
            if not isinstance(found, SCALARS) or found != value:
                return False
    return True


def filter_terms(metadata: Mapping[str, Any] | None, tag: str | None) -> list[tuple[str, Any]]:
    """A listing's filters as index terms (key, value); the tag as ``(TAG_KEY, tag)``.

    Raises:
        MetadataError: a filter value that could never match an indexed entry.
    """
    terms: list[tuple[str, Any]] = []
    for key, value in (metadata or {}).items():
        if not isinstance(key, str) or not key or key.startswith(PRIVATE_PREFIX):
            raise MetadataError(
                f"cannot filter on key {key!r}: search keys are non-empty strings not starting with 'wayline.'"
            )
        if not isinstance(value, SCALARS):
            raise MetadataError(
                f"cannot filter {key!r} on {value!r}: only str, int, float and bool metadata values are searchable"
            )
        terms.append((key, value))
    if tag is not None:
        if not isinstance(tag, str) or not tag:
            raise MetadataError(f"cannot filter on tag {tag!r}: tags are non-empty strings")
        terms.append((TAG_KEY, tag))
    return terms
