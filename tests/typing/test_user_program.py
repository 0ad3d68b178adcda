"""wayline is typed for its users: ``mypy --strict`` on a user's program passes, catches the
mistakes it should, and the program runs.

This checks what ships (``py.typed``, the overloads on ``@workflow`` and ``rt.start``) from a
user's side: mypy runs in a fresh directory on copies of the two programs, against the
installed package, as it would in a project that depends on wayline.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
PROGRAMS = ("user_program.py", "wrong_program.py")
_ERROR = re.compile(r"^(?P<file>[\w.]+):(?P<line>\d+): error: (?P<message>.*?)  \[(?P<code>[\w-]+)\]$")


def _expected(program: str) -> set[tuple[str, int, str]]:
    """The ``# error: CODE`` marks of ``program``: (file, line, code)."""
    marks = set()
    for number, line in enumerate((HERE / program).read_text().splitlines(), start=1):
        found = re.search(r"# error: ([\w-]+)$", line)
        if found:
            marks.add((program, number, found.group(1)))
    return marks


@pytest.fixture(scope="module")
def mypy_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[set[tuple[str, int, str]], str]:
    work = tmp_path_factory.mktemp("typing")
    for program in PROGRAMS:
        shutil.copy(HERE / program, work / program)
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(work / ".mypy_cache"), *PROGRAMS],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
    )
    errors = set()
    for line in proc.stdout.splitlines():
        found = _ERROR.match(line)
        if found:
            errors.add((found["file"], int(found["line"]), found["code"]))
    return errors, proc.stdout + proc.stderr


def test_a_typed_user_program_passes_mypy_strict(mypy_report: tuple[set[tuple[str, int, str]], str]) -> None:
    errors, output = mypy_report
    assert "(checked 2 source files)" in output, output  # mypy ran to the end on both
    assert {e for e in errors if e[0] != "wrong_program.py"} == set(), output


def test_mypy_strict_reports_each_mistake_where_it_is(mypy_report: tuple[set[tuple[str, int, str]], str]) -> None:
    errors, output = mypy_report
    expected = _expected("wrong_program.py")
    assert len(expected) == 8
    assert errors == expected, output


def test_the_typed_program_runs(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(HERE / "user_program.py")], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["ch_o-1:", "approved", "1", "hello", "Ada"]
