"""Run ``bentoml serve`` as a child process group: for the demo, benchmarks and e2e tests.

Each server gets its own port on 127.0.0.1, its own SQLite store and log file
under a working directory, and its own process group so that stopping it reaches
every worker. Give concurrent servers separate BENTOML_HOMEs (``copy_home``):
BentoML's Prometheus multiprocess files would otherwise collide.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
SERVICE = "service.service:ModelService"
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_environ() -> dict[str, str]:
    """This process's environment without MONITOR_*, OTEL_* or BENTOML_* settings."""
    return {
        k: v for k, v in os.environ.items() if not k.startswith(("MONITOR_", "OTEL_", "BENTOML_"))
    }


def copy_home(trained_home: Path, workdir: Path) -> Path:
    """A private copy of a BENTOML_HOME (models included) under ``workdir``."""
    home = workdir / "bentoml-home"
    shutil.copytree(trained_home, home)
    return home


class Server:
    """One ``bentoml serve`` process group; use as a context manager or call :meth:`stop`.

    Args:
        workdir: a directory of its own (home copy, store, log).
        trained_home: a BENTOML_HOME holding the models; copied into ``workdir``.
        env: extra environment (MONITOR_*, OTEL_*), applied last.
        target: what to serve (the service import path, or a bento tag).
        home: use this BENTOML_HOME as it is instead of copying ``trained_home``.
        cwd: working directory (default: the repository root, as ``bentoml serve`` expects).
    """

    def __init__(
        self,
        workdir: Path,
        trained_home: Path,
        env: Mapping[str, str] | None = None,
        *,
        target: str = SERVICE,
        home: Path | None = None,
        cwd: Path | None = None,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.home = home if home is not None else copy_home(trained_home, workdir)
        self.store_path = workdir / "store.db"
        self.log_path = workdir / "server.log"
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **clean_environ(),
            "BENTOML_HOME": str(self.home),
            "BENTOML_DO_NOT_TRACK": "true",
            "MONITOR_STORE_URL": f"sqlite:///{self.store_path}",
            "MONITOR_WORKERS": "2",
            **(env or {}),
        }
        self.args: Sequence[str] = [
            sys.executable,
            *("-m", "bentoml", "serve", target),
            *("--host", "127.0.0.1", "-p", str(self.port)),
        ]
        self.cwd = cwd if cwd is not None else REPO
        self.proc: subprocess.Popen[bytes] | None = None
        self.killed = False
        """True when :meth:`stop` had to SIGKILL because SIGTERM was not enough."""

    def start(self) -> Server:
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
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> Server:
        """Poll ``/readyz`` until 200; fail with the log tail on timeout or early exit."""
        assert self.proc is not None, "start() first"
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.base_url, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    code = self.proc.returncode
                    raise AssertionError(
                        f"server exited with {code} before ready:\n{self.log_tail()}"
                    )
                with contextlib.suppress(httpx.TransportError):
                    if client.get("/readyz").status_code == 200:
                        return self
                time.sleep(0.2)
        raise AssertionError(f"server not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def __enter__(self) -> Server:
        try:
            return self.start().wait_ready()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client(self, timeout: float = 30.0) -> httpx.Client:
        """An HTTP client for this server (close it, or use it as a context manager)."""
        return httpx.Client(base_url=self.base_url, timeout=timeout)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM the process group, wait; SIGKILL it if it lingers. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.killed = True
                self._signal(signal.SIGKILL)
                self.proc.wait(10)
        # Workers may outlive the arbiter briefly; make sure none is left behind.
        self._signal(signal.SIGKILL)
        return self.proc.returncode

    def wait_exit(self, timeout: float) -> int:
        """Wait for the process to exit on its own; fail with the log tail if it does not."""
        assert self.proc is not None, "start() first"
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"server still running after {timeout:.0f}s:\n{self.log_tail()}"
            ) from None

    def _signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def log(self) -> str:
        """Everything the server wrote so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        """The last lines of the server's output (for failure messages)."""
        return "\n".join(self.log().splitlines()[-lines:])
