"""Rendering for people (tables, aligned fields) and for machines (one JSON document)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from typing import Any

import msgspec

from ..persistence import AnyEvent, Custom, RunStatus, SealedPayload, Secret
from ..runtime import RunInfo
from ._details import Detail
from ._time import iso, when


def _shown(value: Any) -> Any:
    if isinstance(value, (Secret, SealedPayload)):
        return repr(value)  # Secret('***'): never its value
    raise TypeError(f"Encoding objects of type {type(value).__name__} is unsupported")


def plain(value: Any) -> Any:
    """Stored data as JSON-ready builtins (msgspec Structs become dicts, bytes base64, a
    Secret ``"Secret('***')"``)."""
    return msgspec.to_builtins(value, enc_hook=_shown)


def compact(value: Any, limit: int | None = None) -> str:
    """A value as one line of JSON, cut to ``limit`` characters."""
    text = json.dumps(plain(value), ensure_ascii=False, separators=(",", ":"))
    if limit is not None and len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def emit_json(doc: Any) -> None:
    """The command's whole result, as one JSON document on stdout."""
    sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def emit_error(kind: str, message: str, code: int, ids: dict[str, Any] | None = None) -> None:
    """An error as the one JSON document on stdout: ``{"error": {"type", "message", "exit_status", ...ids}}``."""
    emit_json({"error": {"type": kind, "message": message, "exit_status": code, **(ids or {})}})


def run_doc(info: RunInfo, detail: Detail | None = None, owner: str | None = None) -> dict[str, Any]:
    """A run for ``--json``; with its `Detail`, the waits are objects with their deadlines;
    ``owner`` is the worker that runs it (see `_owners.run_owners`)."""
    waiting: list[Any] = [w.doc() for w in detail.waits] if detail is not None else list(info.waiting_for)
    return {
        "run_id": info.run_id,
        "workflow": info.workflow,
        "version": info.version,
        "status": info.status.value,
        "created_at": iso(info.created_at),
        "updated_at": iso(info.updated_at),
        "ended_at": iso(info.ended_at),
        "steps": _steps(info, detail),
        "waiting_for": waiting,
        "vars": plain(info.vars),
        "input": plain(info.input),
        "output": plain(info.output),
        "error": info.error,
        "cause": info.cause,
        "metadata": plain(info.metadata),
        "tags": list(info.tags),
        # The step attempts in flight, known only to the process that runs the run; from any
        # other (this command, mostly) the rest is as of the run's last checkpoint.
        "running": [
            {"step": r.step, "index": r.index, "attempt": r.attempt, "since": iso(r.since)} for r in info.running
        ],
        "live": info.live,
        "owner": owner,
        # only while the store cannot write: what the runtime is stuck on, and since when
        **({"store": plain(info.store_health)} if info.store_health is not None and not info.store_health.ok else {}),
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


def _steps(info: RunInfo, detail: Detail | None) -> int:
    return detail.steps if detail is not None and detail.steps is not None else info.steps


def _waiting(info: RunInfo, detail: Detail | None) -> list[str]:
    if detail is not None and detail.waits:
        return [w.text for w in detail.waits]
    return list(info.waiting_for)  # and what a QUEUED run waits for (a slot), which no wait records


def _detail(info: RunInfo, detail: Detail | None) -> str:
    if info.error:
        return f"{info.error}: {info.cause}" if info.cause else info.error
    waiting = _waiting(info, detail)
    if waiting and not info.status.finished:
        return "waiting for " + "; ".join(waiting)
    return ""


def runs_table(
    runs: Sequence[RunInfo], details: dict[str, Detail] | None = None, owners: dict[str, str | None] | None = None
) -> str:
    """``runs list``: one run per line. STEPS counts a state machine's states entered; OWNER
    names the worker that runs an unfinished run (``-``: none, or finished)."""
    found = details or {}
    owned = owners or {}
    rows = [
        [
            r.run_id,
            f"{r.workflow}@{r.version}",
            r.status.value,
            owned.get(r.run_id) or "-",
            iso(r.created_at) or "",
            iso(r.updated_at) or "",
            str(_steps(r, found.get(r.run_id))),
            _short(_detail(r, found.get(r.run_id)), 90),
        ]
        for r in runs
    ]
    return table(["RUN ID", "WORKFLOW", "STATUS", "OWNER", "CREATED", "UPDATED", "STEPS", "DETAIL"], rows)


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def run_text(info: RunInfo, detail: Detail | None = None, owner: str | None = None) -> str:
    """``runs show``: one field per line, values that are data written as JSON."""
    machine = detail is not None and detail.state_machine
    waiting = _waiting(info, detail) if not info.status.finished else []
    fields: list[tuple[str, str]] = [
        ("run", info.run_id),
        ("workflow", f"{info.workflow} (version {info.version}{', a state machine' if machine else ''})"),
        ("status", info.status.value),
        ("created", iso(info.created_at) or "-"),
        ("updated", iso(info.updated_at) or "-"),
        ("ended", iso(info.ended_at) or "-"),
        ("steps", f"{_steps(info, detail)}{' (states entered)' if machine else ''}"),
        ("waiting for", "; ".join(waiting) or "-"),
        *([] if info.status.finished else [("owner", owner or "none (the next worker that looks for work claims it)")]),
        *running_fields(info),
        ("vars", compact(info.vars)),
        ("input", compact(info.input)),
    ]
    if info.metadata:
        fields.append(("metadata", compact(info.metadata)))
    if info.tags:
        fields.append(("tags", ", ".join(info.tags)))
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


def running_fields(info: RunInfo, now: float | None = None) -> list[tuple[str, str]]:
    """``runs show``: the steps in flight of a run this process runs, or, for an unfinished
    run another process runs, that what is shown is its last checkpoint."""
    if info.status is not RunStatus.RUNNING:
        return []  # a waiting run's checkpoint is all there is: it runs nothing
    if info.live:
        now = time.time() if now is None else now
        steps = [f"step {r.step!r} (attempt {r.attempt}), since {when(r.since, now)}" for r in info.running]
        return [("running", "; ".join(steps) or "-")]
    return [
        (
            "as of",
            f"its last checkpoint, {iso(info.updated_at)}: the process that runs it shows a step in flight "
            "once the step ends (steps are stored with their outcome)",
        )
    ]


def history_note(info: RunInfo) -> str | None:
    """``runs history``: what the history of an unfinished run another process runs leaves out."""
    if info.status is not RunStatus.RUNNING or info.live:
        return None
    return (
        f"(history as of the run's last checkpoint, {iso(info.updated_at)}; a step in flight in the process "
        "that runs it is stored, with its StepStarted, once it ends)"
    )


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
