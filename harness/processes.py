"""Child processes in their own process group: start, wait until ready, stop for good.

The demo, the benchmarks and the end-to-end tests run real servers (``bentoml
serve``, Prometheus, Alertmanager, Phoenix) this way: each writes to its own log
file, and stopping it signals the whole group, so no worker outlives it.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import ClassVar, Self

import httpx


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_port_run(count: int, attempts: int = 50) -> int:
    """The first of ``count`` consecutive ports on 127.0.0.1 that were all free a moment ago.

    Searched below the kernel's ephemeral range (32768+), where the OS never hands out
    ports on its own: ports chosen by number stay clear of ones it picks for others.
    """
    rng = random.Random()
    for _ in range(attempts):
        first = rng.randrange(20000, 32768 - count)
        sockets: list[socket.socket] = []
        try:
            for port in range(first, first + count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError(f"no run of {count} free ports found in {attempts} attempts")


def preferred_port(port: int) -> int:
    """``port`` if it is free on 127.0.0.1 (a familiar URL for people), else any free port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return free_port()
    return port


def http_ok(url: str) -> Callable[[], bool]:
    """A readiness probe: True once ``GET url`` answers 200."""

    def probe() -> bool:
        with contextlib.suppress(httpx.TransportError):
            return httpx.get(url, timeout=2.0).status_code == 200
        return False

    return probe


class ChildProcess:
    """One long-running child process group with a log file; a context manager.

    Args:
        name: for messages and the log file name.
        args: the command line.
        workdir: a directory of its own (the log goes there).
        ready: a probe that returns True once the process serves.
        env: the whole environment (``None``: inherit).
        cwd: working directory (default ``workdir``).
    """

    ready_timeout = 60.0
    stop_timeout = 30.0
    _running: ClassVar[weakref.WeakSet[ChildProcess]] = weakref.WeakSet()

    @classmethod
    def running(cls) -> list[ChildProcess]:
        """Processes started and not yet stopped (whose logs explain a failing test)."""
        return sorted(cls._running, key=lambda p: str(p.log_path))

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        workdir: Path,
        ready: Callable[[], bool],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.args = list(args)
        self.workdir = workdir
        self.env = dict(env) if env is not None else None
        self.cwd = cwd if cwd is not None else workdir
        self.log_path = workdir / f"{name}.log"
        self._ready = ready
        self.proc: subprocess.Popen[bytes] | None = None
        self.killed = False
        """True when :meth:`stop` had to SIGKILL because SIGTERM was not enough."""

    def start(self) -> Self:
        """Launch the process (does not wait for readiness)."""
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.args,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        ChildProcess._running.add(self)
        return self

    def wait_ready(self, timeout: float | None = None) -> Self:
        """Poll the readiness probe; raise with the log tail on timeout or early exit."""
        if self.proc is None:
            raise RuntimeError(f"{self.name}: start() first")
        limit = self.ready_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                raise RuntimeError(
                    f"{self.name} exited with {code} before ready:\n{self.log_tail()}"
                )
            if self._ready():
                return self
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {limit:.0f}s:\n{self.log_tail()}")

    def __enter__(self) -> Self:
        try:
            return self.start().wait_ready()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self, timeout: float | None = None) -> int | None:
        """SIGTERM the process group, wait; SIGKILL it if it lingers. Returns the exit code."""
        if self.proc is None:
            return None
        ChildProcess._running.discard(self)
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(self.stop_timeout if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                self.killed = True
                self._signal(signal.SIGKILL)
                self.proc.wait(10)
        # Children may outlive the leader briefly; make sure none is left behind.
        self._signal(signal.SIGKILL)
        return self.proc.returncode

    def wait_exit(self, timeout: float) -> int:
        """Wait for the process to exit on its own; raise with the log tail if it does not."""
        if self.proc is None:
            raise RuntimeError(f"{self.name}: start() first")
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(
                f"{self.name} still running after {timeout:.0f}s:\n{self.log_tail()}"
            ) from None

    def _signal(self, sig: signal.Signals) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)

    def log(self) -> str:
        """Everything the process wrote so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        """The last lines of the process's output (for failure messages)."""
        return "\n".join(self.log().splitlines()[-lines:])
