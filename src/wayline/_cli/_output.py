"""Rendering for people (tables, aligned fields) and for machines (one JSON document)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from ..persistence import AnyEvent, Custom
from ..runtime import RunInfo


def iso(ts: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC with milliseconds (``2026-11-22T15:30:01.123Z``)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def plain(value: Any) -> Any:
    """Stored data as JSON-ready builtins (msgspec Structs become dicts, bytes base64)."""
    return msgspec.to_builtins(value)


def compact(value: Any, limit: int | None = None) -> str:
    """A value as one line of JSON, cut to ``limit`` characters."""
    text = json.dumps(plain(value), ensure_ascii=False, separators=(",", ":"))
    if limit is not None and len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def emit_json(doc: Any) -> None:
    """The command's whole result, as one JSON document on stdout."""
    sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def run_doc(info: RunInfo) -> dict[str, Any]:
    return {
        "run_id": info.run_id,
        "workflow": info.workflow,
        "version": info.version,
        "status": info.status.value,
        "created_at": iso(info.created_at),
        "updated_at": iso(info.updated_at),
        "ended_at": iso(info.ended_at),
        "steps": info.steps,
        "waiting_for": list(info.waiting_for),
        "vars": plain(info.vars),
        "input": plain(info.input),
        "output": plain(info.output),
        "error": info.error,
        "cause": info.cause,
        **({"store": plain(info.store_health)} if info.store_health is not None else {}),
    }


def event_doc(event: AnyEvent) -> dict[str, Any]:
    doc: dict[str, Any] = plain(event)
    doc["ts"] = iso(event.ts)
    return doc


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces; the last column is not padded."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = []
    for row in (headers, *rows):
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths, strict=False)] + [row[-1]]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _detail(info: RunInfo) -> str:
    if info.error:
        return f"{info.error}: {info.cause}" if info.cause else info.error
    if info.waiting_for:
        return "waiting for " + ", ".join(info.waiting_for)
    return ""


def runs_table(runs: Sequence[RunInfo]) -> str:
    rows = [
        [
            r.run_id,
            f"{r.workflow}@{r.version}",
            r.status.value,
            iso(r.created_at) or "",
            iso(r.updated_at) or "",
            str(r.steps),
            _short(_detail(r), 60),
        ]
        for r in runs
    ]
    return table(["RUN ID", "WORKFLOW", "STATUS", "CREATED", "UPDATED", "STEPS", "DETAIL"], rows)


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def run_text(info: RunInfo) -> str:
    """``runs show``: one field per line, values that are data written as JSON."""
    fields: list[tuple[str, str]] = [
        ("run", info.run_id),
        ("workflow", f"{info.workflow} (version {info.version})"),
        ("status", info.status.value),
        ("created", iso(info.created_at) or "-"),
        ("updated", iso(info.updated_at) or "-"),
        ("ended", iso(info.ended_at) or "-"),
        ("steps", str(info.steps)),
        ("waiting for", ", ".join(info.waiting_for) or "-"),
        ("vars", compact(info.vars)),
        ("input", compact(info.input)),
    ]
    if info.status.value == "SUCCEEDED":
        fields.append(("output", compact(info.output)))
    if info.error is not None:
        fields.append(("error", info.error))
        fields.append(("cause", info.cause or "-"))
    health = info.store_health
    if health is not None and not health.ok:
        since = f" since {iso(health.since)}" if health.since is not None else ""
        fields.append(("store", f"{health.status.upper()}{since}: {health.reason}"))
    width = max(len(k) for k, _ in fields)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in fields)


def event_text(event: AnyEvent) -> str:
    """``runs history``: time, event type, then its fields as ``key=value`` (values in JSON)."""
    doc = plain(event)
    kind = doc.pop("type", type(event).__name__)
    doc.pop("ts", None)
    if isinstance(event, Custom):
        kind = event.name
        # ASL events repeat their type and time inside details; the line shows both already.
        doc = {k: v for k, v in event.details.items() if k not in ("type", "timestamp")}
    parts = [f"{k}={v}" if isinstance(v, str) and v and " " not in v else f"{k}={compact(v)}" for k, v in doc.items()]
    return f"{iso(event.ts)}  {kind:<24} {' '.join(parts)}".rstrip()
