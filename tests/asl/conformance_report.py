"""Print the conformance pass counts per category, on each host: ``python -m tests.asl.conformance_report``."""

from __future__ import annotations

from ._conformance import HOSTS, report

if __name__ == "__main__":
    print("\n\n".join(report(host=host) for host in HOSTS))
