"""Times as the command shows them: ISO 8601 UTC, and how far from now."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(ts: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC with milliseconds (``2026-11-22T15:30:01.123Z``)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def when(ts: float, now: float) -> str:
    """``2026-11-22T15:30:01.123Z (in 59m 58s)``, or ``(... ago)`` for a time past."""
    left = ts - now
    span = _span(abs(left))
    return f"{iso(ts)} ({'in ' + span if left >= 0 else span + ' ago'})"


def _span(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    return f"{hours // 24}d {hours % 24}h"


def relative(ts: float, now: float) -> str:
    """``in 8s`` or ``3s ago``: how far ``ts`` is from ``now``."""
    left = ts - now
    span = _span(abs(left))
    return f"in {span}" if left >= 0 else f"{span} ago"
