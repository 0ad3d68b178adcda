"""The README's code blocks run as written, in order, in one directory, as a reader would run them.

- a block the text says to save (``Save this as `orders.py```) is saved under that name, and
  if it is Python it is run too (``python orders.py``);
- every other Python block is run as a script of its own;
- shell blocks run line by line: ``wayline ...`` for real, on the files and the database the
  blocks before made (exit status 0 each), and ``make TARGET`` as ``make -n`` in the
  repository (the targets exist and resolve; tests/test_makefile.py runs the Makefile's logic).
  ``git clone`` and ``pip install`` need the repository's URL and a package index:
  `test_a_clone_installs_with_pip` builds the wheel that ``pip install ./wayline`` installs.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from _postgres import SKIP_REASON, fresh_database, reachable

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
WAYLINE = Path(sys.executable).with_name("wayline")
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.MULTILINE | re.DOTALL)
_SAVE = re.compile(r"[Ss]ave this(?: one)? as\s+`([\w.]+)`")


@dataclass
class Block:
    language: str
    code: str
    line: int
    save_as: str | None


def blocks() -> list[Block]:
    text = README.read_text()
    found = []
    last_end = 0
    for match in _FENCE.finditer(text):
        before = " ".join(text[last_end : match.start()].rstrip().split("\n\n")[-1].split())
        save = _SAVE.findall(before)
        found.append(
            Block(match.group(1), match.group(2), text.count("\n", 0, match.start()) + 1, save[-1] if save else None)
        )
        last_end = match.end()
    return found


def test_the_readme_has_the_blocks_this_test_knows_how_to_run() -> None:
    found = blocks()
    assert {b.language for b in found} == {"python", "sh", "json"}
    saved = [b.save_as for b in found if b.save_as]
    assert saved == ["orders.py", "approvals.py", "greeting.py", "greeting.json", "invoices.py", "reports.py"]
    assert sum(b.language == "python" for b in found) >= 8


def _run(argv: list[str], cwd: Path, where: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{where}: {shlex.join(argv)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, f"{where}: {proc.stderr}"
    return proc


@pytest.mark.timeout(300)
def test_every_block_runs_as_written(tmp_path: Path) -> None:
    ran: list[str] = []
    skipped: list[str] = []
    databases: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        _run_blocks(tmp_path, ran, skipped, databases, stack)
    for note in skipped:  # the PostgreSQL lines, where no server is reachable (CI has one)
        print(f"not run: {note}")
    assert ran.count("wayline") >= 10 and "orders.py" in ran
    # What the blocks did, seen through the command line: the runs they made, as they ended.
    shown = subprocess.run(
        [str(WAYLINE), "runs", "list", "--json"], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    runs = {r["run_id"]: r["status"] for r in json.loads(shown.stdout)}
    assert runs["order-1001"] == runs["a-7"] == runs["a-9"] == "SUCCEEDED"
    assert runs["a-10"] == "RUNNING"  # committed, with its cancel in the inbox for a worker


def _run_blocks(
    tmp_path: Path, ran: list[str], skipped: list[str], databases: dict[str, str], stack: contextlib.ExitStack
) -> None:
    for number, block in enumerate(blocks()):
        where = f"README.md line {block.line}"
        if block.language == "json":
            assert block.save_as, f"{where}: a JSON block the text does not say to save"
            (tmp_path / block.save_as).write_text(block.code)
        elif block.language == "python":
            script = tmp_path / (block.save_as or f"readme_block_{number}.py")
            script.write_text(block.code)
            _run([sys.executable, script.name], tmp_path, where)
            ran.append(script.name)
        else:
            for line in block.code.splitlines():
                argv = shlex.split(line, comments=True)
                if not argv:
                    continue
                if argv[0] == "wayline":
                    _run([str(WAYLINE), *argv[1:]], tmp_path, where)
                elif argv[0] == "make":
                    _run(["make", "-n", *argv[1:]], ROOT, where)
                elif argv[0] == "createdb":
                    # A database of its own stands in for the one named, on the test server.
                    if reachable():
                        databases[argv[-1]] = stack.enter_context(fresh_database("wayline_readme"))
                elif argv[0] == "python" and len(argv) == 3 and argv[2].startswith("postgresql://"):
                    database = argv[2].rsplit("/", 1)[-1]
                    if not reachable():
                        skipped.append(f"{where}: {line} ({SKIP_REASON})")
                        continue
                    assert database in databases, f"{where}: {line!r} uses a database no createdb made"
                    _run([sys.executable, str(ROOT / argv[1]), databases[database]], tmp_path, where)
                elif argv[:2] not in (["git", "clone"], ["pip", "install"]):
                    pytest.fail(f"{where}: no way to check {line!r}; teach tests/test_readme.py")
                ran.append(argv[0])


@pytest.mark.timeout(300)
def test_a_clone_installs_with_pip(tmp_path: Path) -> None:
    """``pip install ./wayline`` builds this wheel: it must carry the typing marker and the command."""
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=280,
    )
    if proc.returncode != 0 and "No matching distribution found for hatchling" in proc.stderr:
        pytest.skip("no package index to fetch the build backend (hatchling) from")
    assert proc.returncode == 0, proc.stderr
    (wheel,) = tmp_path.glob("wayline-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(archive.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    assert "wayline/py.typed" in names and "wayline/__init__.py" in names
    assert "wayline = wayline.cli:main" in entry_points
