"""Test-side pieces around the real backends of ``harness.backends``.

The binaries are Debian's (``make services`` installs them); a missing one fails the
test with the install hint, never skips it. Alertmanager sends to a :class:`Webhook`
in the test process.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.backends import (
    ALERTMANAGER_CONFIG,
    PROMETHEUS_CONFIG,
    PROMETHEUS_DIR,
    RULES,
    Alertmanager,
    Prometheus,
    find_binary,
    render_prometheus_config,
    render_rules,
    shipped_job_name,
)

INSTALL_HINT = (
    "install Debian's prometheus and prometheus-alertmanager packages "
    "(`make services` runs deploy/install-services.sh, which does)"
)


def require_binary(*names: str) -> str:
    """The path of the first of ``names`` found on PATH or in /usr/bin; fail the test if none."""
    found = find_binary(*names)
    if found is None:
        pytest.fail(f"{' / '.join(names)} not found: {INSTALL_HINT}", pytrace=False)
    return found


# --- configuration rendered from the shipped files ---------------------------------------------


def render_alertmanager_config(*, webhook_url: str) -> dict[str, Any]:
    """The shipped alertmanager.yml sending to ``webhook_url`` at once (no grouping delay)."""
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    config["route"].update(group_wait="0s", group_interval="1s")
    for receiver in config["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = webhook_url
    return dict(config)


# --- the daemons ---------------------------------------------------------------------------------


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


def start_alertmanager(binary: str, workdir: Path, webhook_url: str) -> Alertmanager:
    """An Alertmanager with the shipped routing, sending to ``webhook_url`` at once."""
    return Alertmanager(binary, workdir, render_alertmanager_config(webhook_url=webhook_url))


__all__ = [
    "ALERTMANAGER_CONFIG",
    "PROMETHEUS_CONFIG",
    "PROMETHEUS_DIR",
    "RULES",
    "Prometheus",
    "Webhook",
    "render_alertmanager_config",
    "render_prometheus_config",
    "render_rules",
    "require_binary",
    "shipped_job_name",
    "start_alertmanager",
]
