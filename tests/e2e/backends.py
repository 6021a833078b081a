"""Prometheus, Alertmanager and a webhook receiver, run for real by end-to-end tests.

The binaries are Debian's (``make services`` installs them); a missing one fails the
test with the install hint, never skips it. Every process listens on 127.0.0.1 only,
runs in its own process group and is stopped by :meth:`Daemon.stop`, pass or fail.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from service.serving import REPO, free_port

PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
RULES = PROMETHEUS_DIR / "rules.yml"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERTMANAGER_CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
INSTALL_HINT = (
    "install Debian's prometheus and prometheus-alertmanager packages "
    "(`make services` runs deploy/install-services.sh, which does)"
)
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def require_binary(*names: str) -> str:
    """The path of the first of ``names`` found on PATH or in /usr/bin; fail the test if none."""
    for name in names:
        found = shutil.which(name)
        if found is None and os.access(f"/usr/bin/{name}", os.X_OK):
            found = f"/usr/bin/{name}"
        if found is not None:
            return found
    pytest.fail(f"{' / '.join(names)} not found: {INSTALL_HINT}", pytrace=False)


def free_port_run(count: int, attempts: int = 50) -> int:
    """The first of ``count`` consecutive ports on 127.0.0.1 that were all free a moment ago."""
    for _ in range(attempts):
        first = free_port()
        if first + count - 1 > 65535:
            continue
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
    raise AssertionError(f"no run of {count} free ports found in {attempts} attempts")


class Daemon:
    """One long-running child process in its own process group, with a log file."""

    def __init__(self, name: str, args: Sequence[str], workdir: Path, ready_url: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.args = list(args)
        self.workdir = workdir
        self.ready_url = ready_url
        self.log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Launch the process (does not wait for readiness)."""
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.args,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Poll the readiness URL until 200; fail with the log tail on timeout or exit."""
        assert self.proc is not None, "start() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(self.ready_url, timeout=2.0).status_code == 200:
                    return
            time.sleep(0.1)
        raise AssertionError(f"{self.name} not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM the process group, then SIGKILL whatever is left."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait(STOP_TIMEOUT)
        self._signal(signal.SIGKILL)

    def _signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the process's output (for failure messages)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


# --- configuration rendered from the shipped files ---------------------------------------------


def render_rules(*, for_: str) -> dict[str, Any]:
    """The shipped rules with every ``for:`` set to ``for_``: same expressions, quicker alerts."""
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                rule["for"] = for_
    return dict(rules)


def render_prometheus_config(
    *, targets: Sequence[str], rules_file: Path, alertmanager: str, interval: str
) -> dict[str, Any]:
    """The shipped prometheus.yml with this test's targets, rules, Alertmanager and intervals."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["global"].update(scrape_interval=interval, evaluation_interval=interval)
    config["rule_files"] = [str(rules_file)]
    (alerting,) = config["alerting"]["alertmanagers"]
    alerting["static_configs"] = [{"targets": [alertmanager]}]
    (job,) = config["scrape_configs"]
    job["static_configs"] = [{"targets": list(targets)}]
    return dict(config)


def render_alertmanager_config(*, webhook_url: str) -> dict[str, Any]:
    """The shipped alertmanager.yml sending to ``webhook_url`` at once (no grouping delay)."""
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    config["route"].update(group_wait="0s", group_interval="1s")
    for receiver in config["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = webhook_url
    return dict(config)


def shipped_job_name() -> str:
    """The scrape job of the shipped prometheus.yml (rules select ``up`` by it)."""
    (job,) = yaml.safe_load(PROMETHEUS_CONFIG.read_text())["scrape_configs"]
    return str(job["job_name"])


# --- the daemons ---------------------------------------------------------------------------------


class Prometheus(Daemon):
    """A real Prometheus with a private TSDB; :meth:`query` runs PromQL over its HTTP API."""

    def __init__(self, binary: str, workdir: Path, config: dict[str, Any]) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        config_path = workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        super().__init__(
            "prometheus",
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            workdir,
            f"{self.base_url}/-/ready",
        )

    def api(self, path: str, **params: str) -> Any:
        """``data`` of a successful ``/api/v1/<path>`` call (fails on an API error)."""
        response = httpx.get(f"{self.base_url}/api/v1/{path}", params=params, timeout=10.0)
        body = response.json()
        assert body.get("status") == "success", f"{path} {params}: {response.text}"
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector ``expr`` evaluates to now (``[{"metric", "value"}]``)."""
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", f"{expr}: {data['resultType']}"
        return list(data["result"])

    def value(self, expr: str) -> float | None:
        """The single value of a one-element query, or None when the result is empty."""
        result = self.query(expr)
        assert len(result) <= 1, f"{expr}: {result}"
        return float(result[0]["value"][1]) if result else None


class Alertmanager(Daemon):
    """A real Alertmanager with the shipped routing, sending to a test webhook; no cluster port."""

    def __init__(self, binary: str, workdir: Path, webhook_url: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        config = render_alertmanager_config(webhook_url=webhook_url)
        config_path = workdir / "alertmanager.yml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        super().__init__(
            "alertmanager",
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.path={workdir / 'data'}",
                f"--web.listen-address={self.address}",
                "--cluster.listen-address=",
            ],
            workdir,
            f"http://{self.address}/-/ready",
        )


class Webhook:
    """An HTTP server on 127.0.0.1 collecting the JSON bodies POSTed to it (Alertmanager's)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._posts: list[Any] = []
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # the http.server hook's name
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length) or b"null")
                with webhook._lock:
                    webhook._posts.append(body)
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # quiet: no stderr per POST
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}/alerts"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Webhook:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5.0)

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert of every notification received so far."""
        with self._lock:
            posts = list(self._posts)
        return [alert for post in posts for alert in post.get("alerts", [])]
