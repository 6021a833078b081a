"""Backends `make demo` starts when installed: Phoenix for traces, Prometheus for metrics.

Neither is required: without them the demo runs on the embedded store alone and
says how to get them. A user who set ``OTEL_EXPORTER_OTLP_*`` keeps their own
trace backend and no Phoenix is started.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from types import TracebackType
from typing import Self

from harness.backends import (
    Phoenix,
    Prometheus,
    find_binary,
    render_prometheus_config,
    render_rules,
    write_yaml,
)
from harness.processes import free_port_run, preferred_port

PHOENIX_PROJECT = "model-monitor-demo"
WORKERS = 2


class DemoBackends:
    """Starts what is available on enter, stops it on exit; ``env`` wires the service to it."""

    def __init__(self, workdir: Path, *, user_otel: bool, window: str) -> None:
        self.workdir = workdir
        self.user_otel = user_otel
        self.window = window
        self.alerts_seen: dict[str, float] = {}
        self.env: dict[str, str] = {}
        self.lines: list[str] = []
        self.phoenix: Phoenix | None = None
        self.prometheus: Prometheus | None = None
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> Self:
        try:
            self._start_phoenix()
            self._start_prometheus()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stack.close()

    def _start_phoenix(self) -> None:
        if self.user_otel:
            self.lines.append("traces: exported to your OTEL_EXPORTER_OTLP_* endpoint")
            return
        if not Phoenix.installed():
            self.lines.append("traces: `make phoenix` installs Arize Phoenix to browse them here")
            return
        print("starting Arize Phoenix (traces) ...", flush=True)
        phoenix = Phoenix(self.workdir / "phoenix", port=preferred_port(6006))
        self.phoenix = self._stack.enter_context(phoenix)
        self.env.update(
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=phoenix.otlp_endpoint("http/protobuf"),
            OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="http/protobuf",
            OTEL_RESOURCE_ATTRIBUTES=f"openinference.project.name={PHOENIX_PROJECT}",
        )
        self.lines.append(f"traces:  {phoenix.url}  (Arize Phoenix, project {PHOENIX_PROJECT})")

    def _start_prometheus(self) -> None:
        binary = find_binary("prometheus")
        if binary is None:
            self.lines.append(
                "metrics: `make services` (Debian's prometheus) to watch them in Prometheus"
            )
            return
        print("starting Prometheus (metrics, alert rules) ...", flush=True)
        first = free_port_run(WORKERS)
        workdir = self.workdir / "prometheus"
        rules = write_yaml(workdir / "rules.yml", render_rules(for_="10s", window=self.window))
        config = render_prometheus_config(
            targets=[f"127.0.0.1:{first + i}" for i in range(WORKERS)],
            rules_file=rules,
            alertmanager=None,
            interval="2s",
        )
        prometheus = Prometheus(binary, workdir, config, port=preferred_port(9090))
        self.prometheus = self._stack.enter_context(prometheus)
        self.env["MONITOR_PROMETHEUS_PORT"] = str(first)
        url = prometheus.base_url
        self.lines += [
            f"metrics: {url}/graph?g0.expr=ml_quality_accuracy  (Prometheus)",
            f"alerts:  {url}/alerts  (deploy/prometheus/rules.yml on the {self.window} window, "
            "`for` 10s)",
        ]

    def watch_alerts(self, t: float) -> list[str]:
        """Alerts firing now; remembers when each first fired (``t``, demo seconds)."""
        if self.prometheus is None:
            return []
        try:
            series = self.prometheus.query('ALERTS{alertstate="firing"}')
        except (RuntimeError, OSError):
            return []
        names = sorted({s["metric"]["alertname"] for s in series})
        for name in names:
            self.alerts_seen.setdefault(name, t)
        return names

    def summary(self) -> list[str]:
        """What Prometheus saw, read back with PromQL: proof the metrics flowed."""
        if self.prometheus is None:
            return []
        p = self.prometheus
        rows = p.value("sum(ml_predictions_total)")
        fired = ", ".join(f"{name} (t={t:.0f}s)" for name, t in self.alerts_seen.items())
        return [
            f"Prometheus: sum(ml_predictions_total) = {rows:.0f}"
            if rows is not None
            else "Prometheus: no ml_predictions_total yet",
            f"alerts that fired during the run: {fired or 'none'}",
        ]
