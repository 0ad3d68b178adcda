"""The ``wayline`` command: inspect runs, send them signals and callbacks, run ASL files.

Installed as a console script; ``wayline --help`` lists the commands. The implementation
lives in ``wayline._cli``.
"""

from __future__ import annotations

from ._cli._main import main as main

__all__ = ("main",)

if __name__ == "__main__":  # pragma: no cover - `python -m wayline.cli`
    import sys

    sys.exit(main())
