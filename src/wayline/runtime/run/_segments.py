"""The version the next segment of a run takes when it continues as new.

A segment is a fresh start of the same run: nothing of the old journal is replayed, so it can
run any version's code. It takes the newest registered version, as a new run would, unless the
run was pinned to its version when it started (``rt.start(..., version=...)``, a
``"<name>:<version>"`` name, a schedule with ``version=``): a pinned run keeps its version
across segments, as a pinned Temporal workflow does. ``ctx.continue_as_new(input, version=...)``
names the version explicitly, overriding both (pass ``ctx.version`` to stay, or a label to
move a pinned run on).
"""

from __future__ import annotations

from ..._errors import ContinueAsNew, VersionNotFoundError
from ...persistence import RunRecord
from .._port import RunPort
from .._versions import PINNED_KEY
from ._messages import Raised


def next_segment(port: RunPort, record: RunRecord, request: ContinueAsNew) -> Raised:
    """The body's ``ctx.continue_as_new`` with the version of the next segment settled (what
    `decide` is told), or the run's failure if it asked for a version not registered."""
    try:
        request.version = next_version(port, record, request.version)
    except VersionNotFoundError as exc:
        return Raised(exc)
    return Raised(request)


def next_version(port: RunPort, record: RunRecord, requested: str | None) -> str:
    """The version label the run's next segment runs.

    Raises:
        VersionNotFoundError: ``requested`` is not a registered version of the workflow.
    """
    if requested is not None:
        return port.workflow(record.workflow, None, requested).version  # strict: no fallback
    if record.metadata.get(PINNED_KEY):
        return record.version
    return port.workflow(record.workflow, None).version
