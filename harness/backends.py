"""Observability backends run next to the service: Prometheus, Alertmanager, Arize Phoenix.

Used by ``make demo`` (when they are installed) and by the end-to-end tests. Each
listens on 127.0.0.1 only, on ports picked here, with a private data directory,
and runs as a :class:`~harness.processes.ChildProcess`. Configuration is rendered
from the files shipped in ``deploy/``, so demo, tests and users share one source.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

from harness.processes import ChildProcess, free_port, http_ok
from harness.serving import REPO, clean_environ

PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
RULES = PROMETHEUS_DIR / "rules.yml"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERTMANAGER_CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
PHOENIX_VENV = REPO / ".venv-phoenix"
PHOENIX_PYTHON = PHOENIX_VENV / "bin" / "python"
PHOENIX_LAUNCHER = Path(__file__).with_name("phoenix_launch.py")

LOOPBACK = {"0100007F", "0000000000000000FFFF00000100007F", "00000000000000000000000001000000"}
"""127.0.0.1, ::ffff:127.0.0.1 and ::1 as /proc/net/tcp{,6} write them."""

MAX_SPAN_PAGES = 50
"""Most pages of 1,000 spans one :meth:`Phoenix.spans` call reads."""

Span = dict[str, Any]
"""A span as Phoenix's REST API returns it: ``name``, ``context`` {``trace_id``,
``span_id``}, ``parent_id``, ``attributes``, ``events``, ``status_code``, …"""


def find_binary(*names: str) -> str | None:
    """The path of the first of ``names`` on PATH or in /usr/bin, else None."""
    for name in names:
        found = shutil.which(name)
        if found is None and os.access(f"/usr/bin/{name}", os.X_OK):
            found = f"/usr/bin/{name}"
        if found is not None:
            return found
    return None


# --- configuration rendered from the shipped files ---------------------------------------------


SHIPPED_RULE_WINDOW = "1h"
"""The ``ml.window`` the shipped gauge rules read."""


def render_rules(*, for_: str, window: str = SHIPPED_RULE_WINDOW) -> dict[str, Any]:
    """The shipped rules with every ``for:`` set to ``for_`` and gauges read over ``window``.

    Same expressions otherwise: quicker alerts for tests and the demo.
    """
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                rule["for"] = for_
                rule["expr"] = rule["expr"].replace(
                    f'ml_window="{SHIPPED_RULE_WINDOW}"', f'ml_window="{window}"'
                )
    return dict(rules)


def render_prometheus_config(
    *, targets: Sequence[str], rules_file: Path, alertmanager: str | None, interval: str
) -> dict[str, Any]:
    """The shipped prometheus.yml with these targets, rules, Alertmanager and intervals."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["global"].update(scrape_interval=interval, evaluation_interval=interval)
    config["rule_files"] = [str(rules_file)]
    if alertmanager is None:
        config.pop("alerting", None)
    else:
        (alerting,) = config["alerting"]["alertmanagers"]
        alerting["static_configs"] = [{"targets": [alertmanager]}]
    (job,) = config["scrape_configs"]
    job["static_configs"] = [{"targets": list(targets)}]
    return dict(config)


def shipped_job_name() -> str:
    """The scrape job of the shipped prometheus.yml (rules select ``up`` by it)."""
    (job,) = yaml.safe_load(PROMETHEUS_CONFIG.read_text())["scrape_configs"]
    return str(job["job_name"])


def write_yaml(path: Path, config: dict[str, Any]) -> Path:
    """Write a rendered configuration (a daemon's config, rules) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# --- the daemons ---------------------------------------------------------------------------------


class Prometheus(ChildProcess):
    """A real Prometheus with a private TSDB; :meth:`query` runs PromQL over its HTTP API."""

    ready_timeout = 30.0
    stop_timeout = 10.0

    def __init__(self, binary: str, workdir: Path, config: dict[str, Any], *, port: int = 0):
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        config_path = write_yaml(workdir / "prometheus.yml", config)
        super().__init__(
            "prometheus",
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            workdir,
            http_ok(f"{self.base_url}/-/ready"),
        )

    def api(self, path: str, **params: str) -> Any:
        """``data`` of a successful ``/api/v1/<path>`` call (raises on an API error)."""
        response = httpx.get(f"{self.base_url}/api/v1/{path}", params=params, timeout=10.0)
        body = response.json()
        if body.get("status") != "success":
            raise RuntimeError(f"prometheus {path} {params}: {response.text}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector ``expr`` evaluates to now (``[{"metric", "value"}]``)."""
        data = self.api("query", query=expr)
        if data["resultType"] != "vector":
            raise RuntimeError(f"{expr}: expected a vector, got {data['resultType']}")
        return list(data["result"])

    def value(self, expr: str) -> float | None:
        """The single value of a one-element query, or None when the result is empty."""
        result = self.query(expr)
        if len(result) > 1:
            raise RuntimeError(f"{expr}: expected at most one series, got {result}")
        return float(result[0]["value"][1]) if result else None


class Alertmanager(ChildProcess):
    """A real Alertmanager with the given configuration; no cluster port."""

    ready_timeout = 30.0
    stop_timeout = 10.0

    def __init__(self, binary: str, workdir: Path, config: dict[str, Any]) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        config_path = write_yaml(workdir / "alertmanager.yml", config)
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
            http_ok(f"http://{self.address}/-/ready"),
        )


class Phoenix(ChildProcess):
    """Arize Phoenix (``make phoenix``) as a real trace store, both receivers on loopback.

    It accepts OTLP traces over HTTP (``/v1/traces`` on its web port) and gRPC, and
    files each span under the project named by the ``openinference.project.name``
    resource attribute (else ``default``); :meth:`spans` reads them back through
    ``GET /v1/projects/{project}/spans``. It has no metrics receiver.
    """

    ready_timeout = 90.0
    stop_timeout = 20.0

    def __init__(self, workdir: Path, *, python: Path = PHOENIX_PYTHON, port: int = 0) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.grpc_port = free_port()
        for _ in range(10):  # the OS may hand out a just-released port twice
            if self.grpc_port != self.port:
                break
            self.grpc_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        healthy = http_ok(f"{self.url}/healthz")
        super().__init__(
            "phoenix",
            [str(python), "-P", str(PHOENIX_LAUNCHER), "serve"],
            workdir,
            lambda: healthy() and self._check_loopback_only(),
            env={
                **{k: v for k, v in clean_environ().items() if not k.startswith("PHOENIX_")},
                "PHOENIX_HOST": "127.0.0.1",
                "PHOENIX_PORT": str(self.port),
                "PHOENIX_GRPC_PORT": str(self.grpc_port),
                "PHOENIX_TELEMETRY_ENABLED": "false",
                "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
                "PHOENIX_WORKING_DIR": str(workdir / "data"),
            },
        )

    @staticmethod
    def installed(python: Path = PHOENIX_PYTHON) -> bool:
        """True when ``make phoenix`` has created its virtualenv."""
        return python.exists()

    def otlp_endpoint(self, protocol: str) -> str:
        """``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` for ``grpc`` or ``http/protobuf``."""
        if protocol == "grpc":
            return f"http://127.0.0.1:{self.grpc_port}"
        return f"{self.url}/v1/traces"

    def _check_loopback_only(self) -> bool:
        """Both receivers listen, and on loopback only (the launcher's job for gRPC)."""
        for port in (self.port, self.grpc_port):
            hosts = listening_hosts(port)
            if not hosts:
                return False
            if not hosts <= LOOPBACK:
                raise RuntimeError(f"phoenix listens on {hosts - LOOPBACK} (hex), port {port}")
        return True

    def spans(self, project: str, trace_ids: Sequence[str]) -> list[Span]:
        """Every span Phoenix has stored so far for ``trace_ids`` in ``project``.

        A project that has no span yet does not exist (404): that is an empty list.
        """
        found: list[Span] = []
        params: list[tuple[str, str | int | float | bool | None]] = [("limit", 1000)]
        params += [("trace_id", tid) for tid in trace_ids]
        cursor = None
        with httpx.Client(base_url=self.url, timeout=10.0) as client:
            for _ in range(MAX_SPAN_PAGES):
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
        raise RuntimeError(f"more than {MAX_SPAN_PAGES} pages of spans for {len(trace_ids)} traces")


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
