"""wayline's benchmark suites: ``python -m benchmarks <suite> [--json] [--quick]``.

See ``benchmarks/__main__.py`` for the command line and ``_suites.py`` for what
each suite measures. Everything here is internal; nothing is imported by wayline.
"""
