"""The Makefile rebuilds a .venv that another Python made, instead of reusing it.

Real `make` on the repository's Makefile, in a scratch directory (its paths are relative
to the working directory), with `-n`: it decides what it would do, and the rebuild check
runs as make reads the file.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

MAKEFILE = Path(__file__).resolve().parents[1] / "Makefile"

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _fake_python(venv: Path, script: str) -> None:
    (venv.parent / "pyproject.toml").touch()  # older than the venv's stamp: installed, up to date
    python = venv / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f"#!/bin/sh\n{script}\n")
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    (venv / ".installed").write_text("")


def _make(cwd: Path, *targets: str) -> subprocess.CompletedProcess[str]:
    if not (cwd / "pyproject.toml").exists():
        (cwd / "pyproject.toml").touch()
    return subprocess.run(
        ["make", "-f", str(MAKEFILE), "-n", *targets, f"PYTHON={sys.executable}"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_venv_of_another_python_is_rebuilt(tmp_path: Path) -> None:
    _fake_python(tmp_path / ".venv", "echo cpython-39 /opt/python3.9")
    proc = _make(tmp_path, "demo")
    assert proc.returncode == 0, proc.stderr
    assert ".venv was made by another Python (cpython-39 /opt/python3.9); rebuilding it" in proc.stdout
    assert not (tmp_path / ".venv").exists()
    assert f"{sys.executable} -m venv .venv" in proc.stdout


def test_a_venv_whose_python_is_gone_is_rebuilt(tmp_path: Path) -> None:
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    proc = _make(tmp_path, "demo")
    assert "(its interpreter is gone); rebuilding it" in proc.stdout
    assert not (tmp_path / ".venv").exists()


def test_a_venv_of_the_same_python_is_kept(tmp_path: Path) -> None:
    _fake_python(tmp_path / ".venv", f'exec "{sys.executable}" "$@"')
    proc = _make(tmp_path, "demo")
    assert proc.returncode == 0, proc.stderr
    assert "rebuilding" not in proc.stdout
    assert (tmp_path / ".venv" / "bin" / "python").exists()
    assert "-m venv" not in proc.stdout  # installed already: straight to the demo


def test_lint_checks_the_examples_too(tmp_path: Path) -> None:
    _fake_python(tmp_path / ".venv", f'exec "{sys.executable}" "$@"')
    proc = _make(tmp_path, "lint")
    assert proc.returncode == 0, proc.stderr
    assert "ruff check src tests benchmarks examples" in proc.stdout
