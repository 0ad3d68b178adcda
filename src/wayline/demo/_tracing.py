"""The demo with ``--otlp-endpoint``: is a collector there, and what did the workers send it.

The demo says only what it knows. Before it starts a worker it opens a TCP connection to the
collector; if nothing answers it says so once and runs without exporting (as fast as ever),
instead of leaving each worker to retry, warn and claim nothing useful. A worker that exits
normally reports what its exporters sent and dropped (`TelemetryProviders.export_status`);
the worker killed with SIGKILL cannot, and the demo says that too.
"""

from __future__ import annotations

import re
import socket
import urllib.parse
from typing import Any

#: Seconds the demo waits for a TCP connection to the collector before calling it absent.
CONNECT_TIMEOUT_S = 1.0


def collector_unreachable(endpoint: str) -> str | None:
    """Why no collector can be reached at ``endpoint``, or None if a TCP connection opens."""
    parts = urllib.parse.urlsplit(endpoint)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        return f"the URL has no valid port ({exc})"
    if not parts.hostname:
        return "the URL names no host (write it as http://host:port)"
    try:
        with socket.create_connection((parts.hostname, port), timeout=CONNECT_TIMEOUT_S):
            return None
    except TimeoutError:
        return f"no answer from {parts.hostname}:{port} within {CONNECT_TIMEOUT_S:g}s"
    except OSError as exc:
        return f"cannot connect to {parts.hostname}:{port}: {exc.strerror or exc}"


def trace_lines(
    trace_id: str | None,
    endpoint: str,
    report: dict[str, Any] | None,
    killed: bool,
    rerun: list[str] | None = None,
) -> list[str]:
    """What the demo can truthfully say about the run's trace at ``endpoint``.

    ``report`` is the export status of the worker that finished the run (None if it sent
    none), with the ``notes`` its exporters would have logged; ``rerun`` the steps that ran
    again after the kill.
    """
    if report is None:
        return [f"   the workers' export to {endpoint} did not report (no trace to show)"]
    sent, dropped = report["spans_exported"], report["spans_dropped"]
    lines = []
    if trace_id is not None and sent:
        lines.append(f"   trace {trace_id}: the run's one trace, at {endpoint}")
        if killed:
            lines += [
                f"   (the last worker sent {sent} of its spans; the killed one sent its own as they ended)",
                "   In it: the root span, sent when rt.start returned; each worker's segment (the killed",
                "   one's reported by the next worker); the steps; and 'interrupted', from the last",
                "   checkpoint to the restart" + (", naming the steps in flight at the kill." if rerun else "."),
            ]
            if rerun:
                again = ", ".join(rerun)
                lines.append(f"   Their re-runs ({again}) are attempt 2 there, with the same idempotency key.")
        else:
            lines.append(f"   (the worker sent {sent} spans: the root, its segment, one per step)")
    if dropped:
        lines.append(f"   the span export to {endpoint} failed ({report['error']}): {dropped} spans were not sent")
    refused = report.get("metrics_refused")
    if refused:
        lines.append(f"   metrics: the collector does not take them ({_http(refused)}): the workers sent traces only")
    elif report["metric_exports_dropped"] and not dropped:
        lines.append(f"   metrics: {report['metric_exports_dropped']} exports failed ({report['error']})")
    return lines


def _http(error: str) -> str:
    """"...batch code: 405, reason: Method Not Allowed" as "HTTP 405 Method Not Allowed"."""
    found = re.search(r"code: (\d{3}), reason: (.+)$", error)
    return f"HTTP {found.group(1)} {found.group(2)}" if found else error
