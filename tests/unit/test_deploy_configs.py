"""The production recipe in deploy/ hangs together: compose file, collector config and friends.

There is no Docker engine here, so nothing is started. These check what a typo or a
renamed file breaks first: YAML that parses, collector pipelines that name only
defined components, pinned images, mounted files that exist in the repository, and
host names and ports that agree from one file to the next.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yaml"
COLLECTOR_FILE = DEPLOY / "otel-collector" / "config.yaml"

JAEGER_OTLP_GRPC_PORT = 4317
ALERTMANAGER_PORT = 9093
PROMETHEUS_PORT = 9090


def load(path: Path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


COMPOSE = load(COMPOSE_FILE)
COLLECTOR = load(COLLECTOR_FILE)
SERVICES: dict[str, Any] = COMPOSE["services"]
REPLICAS = ("model-service-a", "model-service-b")


# --- reading compose ---------------------------------------------------------------


def mounts(service: str) -> list[tuple[str, str]]:
    """``(source, container path)`` of each volume of a service (short syntax)."""
    found = []
    for entry in SERVICES[service].get("volumes", []):
        assert isinstance(entry, str), f"{service}: use the short volume syntax"
        source, target, *_ = entry.split(":")
        found.append((source, target))
    return found


def bind_mounts(service: str) -> dict[str, Path]:
    """Container path → host path, for the mounts of files and folders of the repository."""
    return {
        target: (DEPLOY / source).resolve()
        for source, target in mounts(service)
        if source.startswith((".", "/"))
    }


def host_file(service: str, container_path: str) -> Path:
    """The repository file a service sees at ``container_path`` (itself or in a mounted folder)."""
    wanted = PurePosixPath(container_path)
    for target, host in bind_mounts(service).items():
        if wanted == PurePosixPath(target):
            return host
        if wanted.is_relative_to(target):
            return host / wanted.relative_to(target)
    raise AssertionError(f"{service}: nothing of the repository is mounted at {container_path}")


def flag(service: str, name: str) -> str:
    """The value of ``--name=value`` in a service's command."""
    for arg in SERVICES[service].get("command", []):
        if arg.startswith(f"--{name}="):
            return str(arg.split("=", 1)[1])
    raise AssertionError(f"{service}: no --{name}= in its command")


def service_mounting(container_path: str) -> str:
    """The one service that has something mounted at ``container_path``."""
    names = [s for s in SERVICES if any(t == container_path for _, t in mounts(s))]
    assert len(names) == 1, f"{container_path} is mounted by {names}"
    return names[0]


def address(endpoint: str) -> tuple[str, int]:
    """``(host, port)`` of ``host:port`` or ``scheme://host:port/…``."""
    parts = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}")
    assert parts.hostname and parts.port, f"no host:port in {endpoint!r}"
    return parts.hostname, parts.port


COLLECTOR_SERVICE = service_mounting("/etc/otelcol-contrib/config.yaml")
PROMETHEUS_SERVICE = service_mounting("/etc/prometheus/prometheus.yml")
GRAFANA_SERVICE = service_mounting("/etc/grafana/provisioning/datasources/prometheus.yml")
PROMETHEUS_CONFIG = load(host_file(PROMETHEUS_SERVICE, flag(PROMETHEUS_SERVICE, "config.file")))


# --- the collector -------------------------------------------------------------------


def test_collector_pipelines_use_only_defined_components() -> None:
    pipelines = COLLECTOR["service"]["pipelines"]
    assert set(pipelines) == {"traces", "metrics"}
    used: dict[str, set[str]] = {"receivers": set(), "processors": set(), "exporters": set()}
    for signal, pipeline in pipelines.items():
        for kind, names in used.items():
            listed = pipeline.get(kind, [])
            assert kind == "processors" or listed, f"{signal}: no {kind}"
            undefined = set(listed) - set(COLLECTOR.get(kind, {}))
            assert not undefined, f"{signal} pipeline names undefined {kind}: {undefined}"
            names.update(listed)
        # memory_limiter refuses data before anything else holds it; batch comes after.
        assert pipeline["processors"] == ["memory_limiter", "batch"], signal
    for kind, names in used.items():
        assert set(COLLECTOR[kind]) == names, f"{kind} defined but in no pipeline"
    assert set(COLLECTOR["service"]["extensions"]) == set(COLLECTOR["extensions"])


def test_collector_sends_traces_to_jaeger_and_serves_metrics_to_prometheus() -> None:
    pipelines = COLLECTOR["service"]["pipelines"]
    (traces,) = pipelines["traces"]["exporters"]
    assert traces.split("/")[0] == "otlp_grpc"
    host, port = address(COLLECTOR["exporters"][traces]["endpoint"])
    assert (host, port) == ("jaeger", JAEGER_OTLP_GRPC_PORT)
    assert SERVICES[host]["image"].startswith("jaegertracing/all-in-one:")
    assert SERVICES[host]["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"
    # The `prometheus` exporter keeps the `_total` names the rules and dashboard use;
    # remote write would not.
    assert pipelines["metrics"]["exporters"] == ["prometheus"]


def test_metric_expiration_outlives_two_export_intervals() -> None:
    """A series the collector drops between two exports would break counters."""
    raw = COLLECTOR["exporters"]["prometheus"]["metric_expiration"]
    match = re.fullmatch(r"(\d+)([smh])", raw)
    assert match, raw
    expiration_s = int(match[1]) * {"s": 1, "m": 60, "h": 3600}[match[2]]
    env = SERVICES[REPLICAS[0]]["environment"]
    interval_s = int(env["OTEL_METRIC_EXPORT_INTERVAL"]) / 1000
    assert expiration_s >= 2 * interval_s


# --- compose -------------------------------------------------------------------------


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_image_is_pinned(service: str) -> None:
    image = SERVICES[service]["image"]
    name, _, tag = image.rpartition(":")
    assert name and "/" not in tag, f"{service}: {image} has no tag"
    assert tag != "latest", f"{service}: {image} is not pinned"


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_mounted_paths_exist(service: str) -> None:
    for source, target in mounts(service):
        if not source.startswith((".", "/")):
            assert source in COMPOSE["volumes"], f"{service}: volume {source} is not declared"
            continue
        host = (DEPLOY / source).resolve()
        assert host.is_relative_to(REPO), f"{service}: {source} is outside the repository"
        assert host.exists(), f"{service}: {source} (for {target}) is missing"


def test_published_ports_are_on_loopback_and_distinct() -> None:
    published = [p for s in SERVICES.values() for p in s.get("ports", [])]
    assert published
    assert all(p.startswith("127.0.0.1:") for p in published), published
    host_ports = [p.split(":")[1] for p in published]
    assert len(set(host_ports)) == len(host_ports), host_ports


@pytest.mark.parametrize("replica", REPLICAS)
def test_service_exports_to_the_collector(replica: str) -> None:
    service = SERVICES[replica]
    env = service["environment"]
    host, port = address(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert host == COLLECTOR_SERVICE
    assert COLLECTOR_SERVICE in service["depends_on"]
    protocol = {"grpc": "grpc", "http/protobuf": "http"}[env["OTEL_EXPORTER_OTLP_PROTOCOL"]]
    receiver = COLLECTOR["receivers"]["otlp"]["protocols"][protocol]
    assert address(receiver["endpoint"])[1] == port
    # The collector reads the file compose mounts.
    config = flag(COLLECTOR_SERVICE, "config")
    assert host_file(COLLECTOR_SERVICE, config) == COLLECTOR_FILE.resolve()


def test_replicas_share_one_postgres_and_differ_only_in_spool_and_port() -> None:
    a, b = (SERVICES[r] for r in REPLICAS)
    assert a["environment"] == b["environment"]
    url = urlsplit(a["environment"]["MONITOR_STORE_URL"])
    assert url.scheme == "postgresql" and url.hostname in SERVICES
    database = SERVICES[url.hostname]
    assert url.username == database["environment"]["POSTGRES_USER"]
    assert url.path == "/" + database["environment"]["POSTGRES_DB"]
    for replica in REPLICAS:
        assert SERVICES[replica]["depends_on"][url.hostname] == {"condition": "service_healthy"}
    assert a["ports"] != b["ports"]


@pytest.mark.parametrize("replica", REPLICAS)
def test_each_replica_spools_on_a_volume_the_service_user_owns(replica: str) -> None:
    directory = SERVICES[replica]["environment"]["MONITOR_SPOOL_DIR"]
    (volume,) = [s for s, t in mounts(replica) if t == directory]
    assert volume in COMPOSE["volumes"]
    init = SERVICES[replica]["depends_on"]
    (init_service,) = [s for s in init if any(v == volume for v, _ in mounts(s))]
    assert init[init_service] == {"condition": "service_completed_successfully"}
    chown = SERVICES[init_service]["command"]
    assert chown[:3] == ["chown", "-R", "1034:1034"]
    (target,) = [t for v, t in mounts(init_service) if v == volume]
    assert target in chown[3:]


# --- Prometheus, Alertmanager, Grafana as compose wires them --------------------------


def test_prometheus_scrapes_the_collector_with_its_labels() -> None:
    (job,) = PROMETHEUS_CONFIG["scrape_configs"]
    assert job["honor_labels"] is True  # job/instance come from each worker's resource
    (static,) = job["static_configs"]
    host, port = address(static["targets"][0])
    assert host == COLLECTOR_SERVICE
    assert port == address(COLLECTOR["exporters"]["prometheus"]["endpoint"])[1]


def test_prometheus_loads_the_rules_and_alerts_alertmanager() -> None:
    for rule_file in PROMETHEUS_CONFIG["rule_files"]:
        assert host_file(PROMETHEUS_SERVICE, rule_file) == DEPLOY / "prometheus" / "rules.yml"
    # Rules that watch a scrape job by name watch one this configuration has.
    rules = (DEPLOY / "prometheus" / "rules.yml").read_text(encoding="utf-8")
    jobs = {job["job_name"] for job in PROMETHEUS_CONFIG["scrape_configs"]}
    assert set(re.findall(r'\bup\{job="([^"]+)"', rules)) <= jobs
    (alerting,) = PROMETHEUS_CONFIG["alerting"]["alertmanagers"]
    (target,) = alerting["static_configs"][0]["targets"]
    host, port = address(target)
    assert host in SERVICES and port == ALERTMANAGER_PORT, target
    config = flag(host, "config.file")
    assert host_file(host, config) == DEPLOY / "alertmanager" / "alertmanager.yml"


def test_grafana_datasource_is_the_compose_prometheus() -> None:
    path = "/etc/grafana/provisioning/datasources/prometheus.yml"
    (source,) = load(host_file(GRAFANA_SERVICE, path))["datasources"]
    assert source["type"] == "prometheus" and source["isDefault"] is True
    assert address(source["url"]) == (PROMETHEUS_SERVICE, PROMETHEUS_PORT)
    # The same datasource as the one provisioned outside compose.
    (outside,) = load(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml")[
        "datasources"
    ]
    assert source["uid"] == outside["uid"]


def test_grafana_loads_the_dashboards_from_their_mount() -> None:
    provisioning = host_file(GRAFANA_SERVICE, "/etc/grafana/provisioning/dashboards")
    providers = [p for f in provisioning.glob("*.y*ml") for p in load(f)["providers"]]
    assert providers
    for provider in providers:
        folder = host_file(GRAFANA_SERVICE, provider["options"]["path"])
        assert sorted(folder.glob("*.json")), f"no dashboard in {folder}"
