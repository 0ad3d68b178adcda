"""The runnable example of schedules and versions runs and says what its comments claim."""

from __future__ import annotations

import re

from _support import run_example


def test_the_schedules_and_versions_example_runs() -> None:
    lines = run_example("schedules_and_versions.py")
    assert lines[0] == "nightly: 7 runs started, next 2026-03-08 02:00:00+07:00"
    assert lines[1] == "weekly: 5 runs started, paused (quarter closing)"  # 1 fire + 4 backfilled Mondays
    assert lines[2] == "12 runs, the first nightly@2026-02-28T19:00:00Z"  # 02:00 in Hanoi
    assert lines[3] == "replay: [('o-1', 'ok')]"
    assert lines[4] == "totals: [10.0, 11.5]"  # the run in flight kept its steps; the new one paid the fee
    match = re.fullmatch(r"alias live: (\d+) runs on version 1, (\d+) on version 2", lines[5])
    assert match is not None and int(match.group(1)) + int(match.group(2)) == 1000
    assert 40 <= int(match.group(2)) <= 160  # 10% of 1000, well within chance
