"""Print the conformance pass counts per category: ``python -m tests.asl.conformance_report``."""

from __future__ import annotations

from ._conformance import report

if __name__ == "__main__":
    print(report())
