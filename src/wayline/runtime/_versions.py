"""Versions of one workflow side by side: which one is the newest, and weighted aliases.

Several definitions may be registered under one workflow name, each with its own ``version=``
label. A run keeps the version it started with: it is resumed by that version's definition.
A new run takes the newest version unless the caller names one, or names an alias that routes
starts between versions by weight (Step Functions' versions and aliases).

"Newest" compares version labels as version numbers: each label is cut into runs of digits
and runs of other characters; digit runs compare as numbers, the rest as text, left to right.
So ``"2" > "1"``, ``"10" > "9"``, ``"1.10" > "1.9"``, ``"2026-03-01" > "2026-02-28"`` and
``"v2" > "v1"``. A label that is a prefix of another is older (``"1" < "1.1"``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from .._errors import AliasError

_PARTS = re.compile(r"(\d+)")

#: The run metadata key naming the alias a run was started through.
ALIAS_KEY = "alias"
#: The run metadata key set (True) on a run started on a version its caller named: it keeps
#: that version when it continues as new (see `wayline.runtime.run._segments`).
PINNED_KEY = "pinned"


def version_key(label: str) -> tuple[tuple[int, int | str], ...]:
    """The sort key that orders version labels (see the module docstring): the newest sorts last."""
    parts: list[tuple[int, int | str]] = []
    for i, part in enumerate(_PARTS.split(label)):
        if not part:
            continue
        # Odd pieces are the digit runs split out; a number sorts before text at the same place.
        parts.append((0, int(part)) if i % 2 else (1, part))
    return tuple(parts)


def newest(labels: list[str]) -> str:
    """The newest of ``labels`` (not empty)."""
    return max(labels, key=version_key)


@dataclass(frozen=True)
class StateMachineAlias:
    """A name that routes new runs between versions of one state machine, by weight.

    As a Step Functions alias: ``StateMachineAlias("live", "orders", {"1": 90, "2": 10})`` sends
    90% of the runs started through it to version "1" and 10% to version "2". Register it with
    the versions it routes to (``open_runtime(workflows=[v1, v2, alias])``) and start runs with
    ``rt.start(alias, input)`` or ``rt.start("orders:live", input)``. Each run records the
    version it was routed to (``rt.describe(run_id).version``) and the alias
    (``metadata["alias"]``), and keeps that version when it resumes.

    The choice is a function of the run id (a hash of it against the weights), not a random
    draw: a start repeated with the same ``run_id`` routes the same way, in any process, and
    run ids drawn at random split as the weights say.

    Args:
        name: the alias's name; starting ``"<machine>:<name>"`` by name uses it.
        machine: the state machine's name.
        routing: version label -> weight, one or two versions (as on AWS), weights in whole
            percent summing to 100.

    Raises:
        AliasError: the routing is not one or two versions with weights summing to 100.
    """

    name: str
    machine: str
    routing: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or ":" in self.name:
            raise AliasError(self.name, self.machine, "an alias needs a name without ':'")
        routing = dict(self.routing)
        if not 1 <= len(routing) <= 2:
            raise AliasError(self.name, self.machine, f"it routes to {len(routing)} versions; give one or two")
        for version, weight in routing.items():
            if not isinstance(version, str) or type(weight) is not int or not 0 <= weight <= 100:
                raise AliasError(
                    self.name, self.machine, f"version {version!r} has weight {weight!r}: weights are whole percents"
                )
        if sum(routing.values()) != 100:
            raise AliasError(self.name, self.machine, f"its weights add up to {sum(routing.values())}, not 100")
        # Ordered by version, so the same routing given in another order routes the same way.
        object.__setattr__(self, "routing", dict(sorted(routing.items(), key=lambda kv: version_key(kv[0]))))

    @property
    def qualified(self) -> str:
        """``"<machine>:<alias>"``, the name ``rt.start`` accepts for it."""
        return f"{self.machine}:{self.name}"

    def route(self, run_id: str) -> str:
        """The version a run with id ``run_id`` starts on."""
        digest = hashlib.blake2b(f"{self.qualified}\0{run_id}".encode(), digest_size=8).digest()
        point = int.from_bytes(digest, "big") / 2**64 * 100  # uniform in [0, 100)
        total = 0
        chosen = ""
        for version, weight in self.routing.items():
            if weight == 0:
                continue
            chosen = version
            total += weight
            if point < total:
                break
        return chosen
