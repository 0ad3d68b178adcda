"""`EMPTY`: the one empty table a run holds until it needs a table of its own."""

from __future__ import annotations

from typing import Any, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class _SharedEmpty(dict[Any, Any]):
    """The one empty table every run holds in place of a table it has not needed yet."""

    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("a run's shared empty table was written to: take it with `own` first")

    __setitem__ = setdefault = update = _refuse


#: A run in memory holds a dozen tables, most of them empty all its life (a waiting run has
#: no callbacks, no attempt tasks, no signal delivered early): 64 bytes each, more once used
#: and emptied again (a dict keeps its table). They start as this one shared, read-only
#: empty table; a run gets a table of its own at the first write (`own`).
EMPTY: dict[Any, Any] = _SharedEmpty()


def own(table: dict[K, V]) -> dict[K, V]:
    """``table``, or a new dict of its own if it is the shared `EMPTY`: assign the result
    back before writing to it."""
    return {} if table is EMPTY else table
