"""The one adapter into BentoML internals: TracerProvider, worker index, ``tracing`` option.

BentoML's tracer provider is a lazily built singleton: touching it before a service's
config is injected freezes it unconfigured. So the real one is only ever touched in a
child process; in this process the container module is replaced by small fakes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import NoOpTracerProvider

from instrumentation import OTLPSettings
from service.bentoml_internals import (
    BentoMLInternalsChanged,
    bentoml_tracer_provider,
    bentoml_worker_index,
    share_instance_id_with_spans,
    tracing_config,
)

REPO = Path(__file__).resolve().parents[2]
CONTAINERS = "bentoml._internal.configuration.containers"
CONTEXT = "bentoml._internal.context"

_PROBE = textwrap.dedent(
    """
    import json

    import bentoml
    from bentoml._internal.configuration.containers import BentoMLContainer
    from opentelemetry.sdk.trace import TracerProvider

    from instrumentation import OTLPSettings
    from service.bentoml_internals import (
        bentoml_tracer_provider,
        bentoml_worker_index,
        tracing_config,
    )

    def inject(name, env, rate):
        config = tracing_config(OTLPSettings.from_env(env), sample_rate=rate)

        @bentoml.service(name=name, tracing=config)
        class Probe:
            @bentoml.api
            def ping(self) -> str:
                return "pong"

        Probe.inject_config()  # what to_asgi() and serve_http() do first
        tracing = BentoMLContainer.config.tracing.get()
        return {k: tracing[k] for k in ("exporter_type", "sample_rate")} | {
            "otlp": {k: tracing["otlp"][k] for k in ("protocol", "endpoint")}
        }

    out = {
        "grpc": inject(
            "grpc_probe",
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317",
             "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            0.5,
        ),
        "none": inject("none_probe", {}, 0.1),
        # Last: the provider is built from the config injected last.
        "http": inject(
            "http_probe", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, 0.25
        ),
    }
    provider = bentoml_tracer_provider()
    exporters = [
        processor._batch_processor._exporter
        for processor in provider._active_span_processor._span_processors
    ]
    out["provider"] = {
        "is_sdk": isinstance(provider, TracerProvider),
        "is_bentoml_singleton": provider is BentoMLContainer.tracer_provider.get(),
        "sampler": provider.sampler.get_description(),
        "exporters": [[type(e).__module__, e._endpoint] for e in exporters],
    }
    # The worker index: None outside a worker; what a worker process sets, read back.
    from bentoml._internal.context import server_context

    out["worker_index"] = [bentoml_worker_index()]
    server_context.worker_index = 2  # what _bentoml_impl.worker.service does in worker 2
    out["worker_index"].append(bentoml_worker_index())
    print(json.dumps(out))
    """
)


def test_bentoml_builds_its_provider_from_our_tracing_config(tmp_path: Path) -> None:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("OTEL_", "MONITOR_"))
    }
    result = subprocess.run(
        [sys.executable, "-c", _PROBE],
        cwd=REPO,
        env={
            **env,
            "PYTHONPATH": str(REPO),
            "BENTOML_HOME": str(tmp_path / "bentoml"),
            "BENTOML_DO_NOT_TRACK": "true",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])

    assert out["grpc"] == {
        "exporter_type": "otlp",
        "sample_rate": 0.5,
        "otlp": {"protocol": "grpc", "endpoint": "http://127.0.0.1:4317"},
    }
    assert out["none"] == {
        "exporter_type": None,
        "sample_rate": 0.1,
        "otlp": {"protocol": None, "endpoint": None},
    }
    assert out["http"] == {
        "exporter_type": "otlp",
        "sample_rate": 0.25,
        "otlp": {"protocol": "http", "endpoint": "http://127.0.0.1:4318/v1/traces"},
    }
    assert out["worker_index"] == [None, 2]
    assert out["provider"] == {
        "is_sdk": True,
        "is_bentoml_singleton": True,
        "sampler": (
            "ParentBased{root:TraceIdRatioBased{0.25},remoteParentSampled:AlwaysOnSampler,"
            "remoteParentNotSampled:AlwaysOnSampler,localParentSampled:AlwaysOnSampler,"
            "localParentNotSampled:AlwaysOnSampler}"
        ),
        "exporters": [
            [
                "opentelemetry.exporter.otlp.proto.http.trace_exporter",
                "http://127.0.0.1:4318/v1/traces",
            ]
        ],
    }


# --- in this process, against fakes of the container module ------------------------------------


def _fake_containers(container: Any) -> types.ModuleType:
    module = types.ModuleType(CONTAINERS)
    setattr(module, "BentoMLContainer", container)  # noqa: B010  # a fake module
    return module


def test_the_provider_is_returned_as_is(monkeypatch: pytest.MonkeyPatch) -> None:
    provider = TracerProvider()
    container = types.SimpleNamespace(tracer_provider=types.SimpleNamespace(get=lambda: provider))
    monkeypatch.setitem(sys.modules, CONTAINERS, _fake_containers(container))

    assert bentoml_tracer_provider() is provider


def test_a_moved_container_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, CONTAINERS, _fake_containers(types.SimpleNamespace()))

    with pytest.raises(BentoMLInternalsChanged) as raised:
        bentoml_tracer_provider()

    assert str(raised.value) == (
        "bentoml._internal.configuration.containers.BentoMLContainer.tracer_provider "
        "is gone; update service/bentoml_internals.py for this BentoML version"
    )
    assert isinstance(raised.value.__cause__, AttributeError)


def test_a_moved_module_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, CONTAINERS, None)  # makes the import raise ImportError

    with pytest.raises(BentoMLInternalsChanged, match=r"is gone; update service/") as raised:
        bentoml_tracer_provider()

    assert isinstance(raised.value.__cause__, ImportError)


def test_a_provider_that_is_not_the_sdk_one_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    container = types.SimpleNamespace(
        tracer_provider=types.SimpleNamespace(get=lambda: NoOpTracerProvider())
    )
    monkeypatch.setitem(sys.modules, CONTAINERS, _fake_containers(container))

    with pytest.raises(BentoMLInternalsChanged) as raised:
        bentoml_tracer_provider()

    assert str(raised.value) == (
        "BentoML's tracer provider is a NoOpTracerProvider, not an SDK TracerProvider"
    )


def _fake_context(context: Any) -> types.ModuleType:
    module = types.ModuleType(CONTEXT)
    setattr(module, "server_context", context)  # noqa: B010  # a fake module
    return module


@pytest.mark.parametrize("index", [None, 1, 2, 16])
def test_the_worker_index_is_returned_as_is(
    monkeypatch: pytest.MonkeyPatch, index: int | None
) -> None:
    context = types.SimpleNamespace(worker_index=index)
    monkeypatch.setitem(sys.modules, CONTEXT, _fake_context(context))

    assert bentoml_worker_index() == index


def test_a_moved_worker_index_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, CONTEXT, _fake_context(types.SimpleNamespace()))

    with pytest.raises(BentoMLInternalsChanged) as raised:
        bentoml_worker_index()

    assert str(raised.value) == (
        "bentoml._internal.context.server_context.worker_index is gone; "
        "update service/bentoml_internals.py for this BentoML version"
    )
    assert isinstance(raised.value.__cause__, AttributeError)


def test_a_moved_context_module_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, CONTEXT, None)  # makes the import raise ImportError

    with pytest.raises(BentoMLInternalsChanged, match=r"worker_index is gone") as raised:
        bentoml_worker_index()

    assert isinstance(raised.value.__cause__, ImportError)


@pytest.mark.parametrize("index", [0, -1, "2", True, 1.0])
def test_a_worker_index_that_is_not_a_whole_number_from_1_fails_loudly(
    monkeypatch: pytest.MonkeyPatch, index: object
) -> None:
    monkeypatch.setitem(
        sys.modules, CONTEXT, _fake_context(types.SimpleNamespace(worker_index=index))
    )

    with pytest.raises(BentoMLInternalsChanged) as raised:
        bentoml_worker_index()

    assert str(raised.value) == f"BentoML's worker index is {index!r}, not a whole number from 1"


# --- tracing_config -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "rate", "expected"),
    [
        pytest.param(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            0.5,
            {
                "sample_rate": 0.5,
                "exporter_type": "otlp",
                "otlp": {"protocol": "grpc", "endpoint": "http://c:4317"},
            },
            id="grpc",
        ),
        pytest.param(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"},
            1.0,
            {
                "sample_rate": 1.0,
                "exporter_type": "otlp",
                "otlp": {"protocol": "http", "endpoint": "http://c:4318/v1/traces"},
            },
            id="http",
        ),
        pytest.param(
            {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://jaeger:4318/v1/traces"},
            0.0,
            {
                "sample_rate": 0.0,
                "exporter_type": "otlp",
                "otlp": {"protocol": "http", "endpoint": "http://jaeger:4318/v1/traces"},
            },
            id="traces-endpoint-only",
        ),
        pytest.param(
            {"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://m:4318/v1/metrics"},
            0.2,
            {"sample_rate": 0.2},
            id="metrics-endpoint-only",
        ),
        pytest.param({}, 0.1, {"sample_rate": 0.1}, id="no-endpoint"),
    ],
)
def test_tracing_config(env: dict[str, str], rate: float, expected: dict[str, Any]) -> None:
    assert tracing_config(OTLPSettings.from_env(env), sample_rate=rate) == expected


@pytest.mark.parametrize(
    ("inherited", "expected"),
    [
        (None, "service.instance.id=w-2"),
        ("", "service.instance.id=w-2"),
        # The `bentoml serve` parent's id is replaced; the user's attributes stay.
        (
            "deployment.environment=prod, service.instance.id=parent-1,team=ml",
            "deployment.environment=prod,team=ml,service.instance.id=w-2",
        ),
    ],
)
def test_the_instance_id_reaches_bentomls_spans_through_the_resource_variable(
    inherited: str | None, expected: str
) -> None:
    environ = {} if inherited is None else {"OTEL_RESOURCE_ATTRIBUTES": inherited}
    share_instance_id_with_spans("w-2", environ)
    assert environ == {"OTEL_RESOURCE_ATTRIBUTES": expected}
