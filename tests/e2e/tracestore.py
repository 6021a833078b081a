"""Arize Phoenix as a real trace store for end-to-end tests: started, queried and stopped here.

Phoenix runs from its own virtualenv (``make phoenix``) on two ports the test picks,
both on 127.0.0.1 (see ``phoenix_launch.py`` for the gRPC one), with a throwaway
working directory for its SQLite database. It accepts OTLP traces over HTTP
(``/v1/traces`` on its web port) and over gRPC, and files each span under the
project named by the ``openinference.project.name`` resource attribute (else
``default``). Spans are read back with its REST API,
``GET /v1/projects/{project}/spans``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from service.serving import REPO, clean_environ, free_port

PHOENIX_VENV = REPO / ".venv-phoenix"
PHOENIX_PYTHON = PHOENIX_VENV / "bin" / "python"
LAUNCHER = Path(__file__).with_name("phoenix_launch.py")
NOT_INSTALLED = (
    f"Arize Phoenix is not installed in {PHOENIX_VENV}: run `make phoenix` "
    "(`make test` installs it before running the suite)"
)
READY_TIMEOUT = 90.0
STOP_TIMEOUT = 20.0
MAX_PAGES = 50
"""Most pages of 1,000 spans one :meth:`Phoenix.spans` call reads."""

LOOPBACK = {"0100007F", "0000000000000000FFFF00000100007F", "00000000000000000000000001000000"}
"""127.0.0.1, ::ffff:127.0.0.1 and ::1 as /proc/net/tcp{,6} write them."""

Span = dict[str, Any]
"""A span as Phoenix's REST API returns it: ``name``, ``context`` {``trace_id``,
``span_id``}, ``parent_id``, ``attributes``, ``events``, ``status_code``, …"""


class Phoenix:
    """One ``phoenix serve`` process group; use as a context manager or call :meth:`stop`."""

    def __init__(self, workdir: Path, *, python: Path = PHOENIX_PYTHON) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.log_path = workdir / "phoenix.log"
        self.port = free_port()
        self.grpc_port = free_port()
        for _ in range(10):  # the OS may hand out a just-released port twice
            if self.grpc_port != self.port:
                break
            self.grpc_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [str(python), "-P", str(LAUNCHER), "serve"]
        self.env = {
            **{k: v for k, v in clean_environ().items() if not k.startswith("PHOENIX_")},
            "PHOENIX_HOST": "127.0.0.1",
            "PHOENIX_PORT": str(self.port),
            "PHOENIX_GRPC_PORT": str(self.grpc_port),
            "PHOENIX_TELEMETRY_ENABLED": "false",
            "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
            "PHOENIX_WORKING_DIR": str(workdir / "data"),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def otlp_endpoint(self, protocol: str) -> str:
        """``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` for ``grpc`` or ``http/protobuf``."""
        if protocol == "grpc":
            return f"http://127.0.0.1:{self.grpc_port}"
        return f"{self.url}/v1/traces"

    def start(self) -> Phoenix:
        """Launch the process (does not wait for readiness)."""
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.args,
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> Phoenix:
        """Poll ``/healthz`` until 200 (the gRPC receiver starts before it); fail with the log."""
        assert self.proc is not None, "start() first"
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.url, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(
                        f"phoenix exited with {self.proc.returncode} before ready:\n"
                        f"{self.log_tail()}"
                    )
                with contextlib.suppress(httpx.TransportError):
                    if client.get("/healthz").status_code == 200:
                        self._check_loopback_only()
                        return self
                time.sleep(0.25)
        raise AssertionError(f"phoenix not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def _check_loopback_only(self) -> None:
        """Both receivers listen, and on loopback only (the launcher's job for gRPC)."""
        for port in (self.port, self.grpc_port):
            hosts = listening_hosts(port)
            assert hosts, f"nothing listens on phoenix's port {port}:\n{self.log_tail()}"
            assert hosts <= LOOPBACK, f"phoenix listens on {hosts - LOOPBACK} (hex), port {port}"

    def __enter__(self) -> Phoenix:
        try:
            return self.start().wait_ready()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM the process group and wait; SIGKILL it if it lingers."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait(10)
        self._signal(signal.SIGKILL)  # anything the process group left behind

    def _signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of Phoenix's output (for failure messages)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def spans(self, project: str, trace_ids: Sequence[str]) -> list[Span]:
        """Every span Phoenix has stored so far for ``trace_ids`` in ``project``.

        A project that has no span yet does not exist (404): that is an empty list.
        """
        found: list[Span] = []
        params: list[tuple[str, str | int]] = [("limit", 1000)]
        params += [("trace_id", tid) for tid in trace_ids]
        cursor = None
        with httpx.Client(base_url=self.url, timeout=10.0) as client:
            for _ in range(MAX_PAGES):
                page = params + ([("cursor", cursor)] if cursor else [])
                response = client.get(f"/v1/projects/{project}/spans", params=page)
                if response.status_code == 404:
                    return []
                response.raise_for_status()
                body = response.json()
                found += body["data"]
                cursor = body.get("next_cursor")
                if not cursor:
                    return found
        raise AssertionError(f"more than {MAX_PAGES} pages of spans for {len(trace_ids)} traces")


def listening_hosts(port: int) -> set[str]:
    """Local addresses (hex, as in ``/proc/net/tcp{,6}``) of sockets listening on ``port``."""
    hosts = set()
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        with contextlib.suppress(FileNotFoundError):
            for line in table.read_text().splitlines()[1:]:
                fields = line.split()
                host, _, hex_port = fields[1].partition(":")
                if fields[3] == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                    hosts.add(host)
    return hosts
