"""A worker subprocess that a test converses with: lines on its stdin, lines from its stdout."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

HERE = Path(__file__).parent


class Worker:
    """``python <script> <args>``: its stdout read line by line by a thread, so that the test
    waits for a line (a condition), never sleeps."""

    def __init__(self, script: str, args: Sequence[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / script), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.seen: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._err: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=self._pump_err, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def _pump_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._err.append(line)

    @property
    def stderr(self) -> str:
        return "".join(self._err[-60:])

    def expect(self, prefix: str, timeout: float = 30.0) -> str:
        """The rest of the next line that starts with ``prefix`` (others are kept in `seen`)."""
        while True:
            try:
                line = self._lines.get(timeout=timeout)
            except queue.Empty:
                pytest.fail(f"no {prefix!r} from the worker within {timeout}s; it said {self.seen}\n{self.stderr}")
            if line is None:
                self.proc.wait()
                pytest.fail(
                    f"the worker exited ({self.proc.returncode}) before {prefix!r}; it said {self.seen}\n{self.stderr}"
                )
            self.seen.append(line)
            if line.startswith(prefix):
                return line[len(prefix) :].strip()

    def expect_any(self, *prefixes: str, timeout: float = 30.0) -> tuple[str, str]:
        """The next line that starts with one of ``prefixes``: (prefix, rest of the line)."""
        while True:
            line = self.expect("", timeout=timeout)
            for prefix in prefixes:
                if line.startswith(prefix):
                    return prefix, line[len(prefix) :].strip()

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def mount_tmpfs(where: Path, size: str) -> None:
    """Mount a small real tmpfs at ``where``, or skip the test saying why it cannot."""
    where.mkdir(parents=True, exist_ok=True)
    if sys.platform != "linux":
        pytest.skip("needs Linux to mount a tmpfs")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")


def unmount(where: Path) -> None:
    subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def fill(directory: Path) -> Path:
    """Write a file into ``directory`` until its filesystem is full; returns the file."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 20, 4096, 1):  # big writes, then what is left, to the last byte
            chunk = b"\0" * size
            try:
                while os.write(fd, chunk):
                    pass
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler
