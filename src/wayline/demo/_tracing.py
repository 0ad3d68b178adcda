"""The demo with ``--otlp-endpoint``: is a collector there, and what did the workers send it.

The demo says only what it knows. Before it starts a worker it opens a TCP connection to the
collector; if nothing answers it says so once and runs without exporting (as fast as ever),
instead of leaving each worker to retry, warn and claim nothing useful. A worker that exits
normally reports what its exporters sent and dropped (`TelemetryProviders.export_status`);
the worker killed with SIGKILL cannot, and the demo says that too.
"""

from __future__ import annotations

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


def trace_lines(trace_id: str | None, endpoint: str, report: dict[str, Any] | None, killed: bool) -> list[str]:
    """What the demo can truthfully say about the run's trace at ``endpoint``.

    ``report`` is the export status of the worker that finished the run (None if it sent none).
    """
    if report is None:
        return [f"   the workers' export to {endpoint} did not report (no trace to show)"]
    sent, dropped = report["spans_exported"], report["spans_dropped"]
    lines = []
    if dropped or report["metric_exports_dropped"]:
        lines.append(
            f"   the export to {endpoint} failed ({report['error']}): the last worker sent {sent} spans "
            f"and dropped {dropped}, and {report['metric_exports_dropped']} metric exports"
        )
    elif trace_id is not None:
        lines.append(f"   trace {trace_id}: the last worker sent {sent} spans of this run's trace to {endpoint}")
    if killed and not dropped:
        lines.append(
            "   (the killed worker exported its spans as they ended, as far as it got; "
            "after SIGKILL it cannot say how far)"
        )
    return lines
