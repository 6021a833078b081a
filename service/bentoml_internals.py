"""The one place that reaches into BentoML internals: its TracerProvider, the worker index.

BentoML builds its own TracerProvider and never installs it globally, so spans
made with any other provider are dropped or land in a separate trace. The
provider is only reachable through a private container; if BentoML moves it,
:func:`bentoml_tracer_provider` fails loudly (and a test pins it).

Each worker serves its own Prometheus endpoint on ``port + index - 1``; BentoML
gives a worker its index (1, 2, …) only in a private context object, read by
:func:`bentoml_worker_index`, which fails loudly too if that moves.

BentoML stamps its spans with ``service.instance.id`` = that index (1, 2, … on every
replica alike) unless ``OTEL_RESOURCE_ATTRIBUTES`` says otherwise;
:func:`share_instance_id_with_spans` says otherwise, so a worker's spans and metrics
carry the same, unique id.

A bento records the model tags it was built with in its ``bento.yaml``, but BentoML
resolves a ``BentoModel`` class attribute again at serve time (``name`` means
``name:latest`` in the local store), so :func:`bento_model_tags` reads them back.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import yaml
from opentelemetry.sdk.environment_variables import OTEL_RESOURCE_ATTRIBUTES
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID
from opentelemetry.sdk.trace import TracerProvider

from instrumentation.telemetry.providers import OTLPSettings


class BentoMLInternalsChanged(RuntimeError):
    """BentoML no longer exposes its TracerProvider where this adapter expects it."""


def bentoml_tracer_provider() -> TracerProvider:
    """BentoML's own TracerProvider (call it only inside a running service)."""
    try:
        from bentoml._internal.configuration.containers import BentoMLContainer

        provider = BentoMLContainer.tracer_provider.get()
    except (ImportError, AttributeError) as exc:
        raise BentoMLInternalsChanged(
            "bentoml._internal.configuration.containers.BentoMLContainer.tracer_provider "
            "is gone; update service/bentoml_internals.py for this BentoML version"
        ) from exc
    if not isinstance(provider, TracerProvider):
        raise BentoMLInternalsChanged(
            f"BentoML's tracer provider is a {type(provider).__name__}, not an SDK TracerProvider"
        )
    return provider


def bentoml_worker_index() -> int | None:
    """This worker's 1-based index among the service's workers; None outside a worker."""
    try:
        from bentoml._internal.context import server_context

        index = server_context.worker_index
    except (ImportError, AttributeError) as exc:
        raise BentoMLInternalsChanged(
            "bentoml._internal.context.server_context.worker_index is gone; "
            "update service/bentoml_internals.py for this BentoML version"
        ) from exc
    if index is not None and (not isinstance(index, int) or isinstance(index, bool) or index < 1):
        raise BentoMLInternalsChanged(
            f"BentoML's worker index is {index!r}, not a whole number from 1"
        )
    return index


def share_instance_id_with_spans(
    instance_id: str, environ: MutableMapping[str, str] = os.environ
) -> None:
    """Make BentoML's spans carry ``instance_id`` as ``service.instance.id``.

    Call it at import of the service module: a worker imports it before BentoML
    builds the worker's TracerProvider, whose resource lets ``OTEL_RESOURCE_ATTRIBUTES``
    override the worker index. An inherited id (the ``bentoml serve`` parent imports
    the module too) is replaced; every other attribute the user set is kept.
    """
    kept = [
        pair.strip()
        for pair in environ.get(OTEL_RESOURCE_ATTRIBUTES, "").split(",")
        if pair.strip() and pair.split("=", 1)[0].strip() != SERVICE_INSTANCE_ID
    ]
    environ[OTEL_RESOURCE_ATTRIBUTES] = ",".join([*kept, f"{SERVICE_INSTANCE_ID}={instance_id}"])


def tracing_config(otlp: OTLPSettings, *, sample_rate: float) -> dict[str, Any]:
    """BentoML's ``tracing`` service option from the standard OTLP settings.

    BentoML ignores ``OTEL_TRACES_SAMPLER`` and samples nothing by default, so the
    rate comes from ``MONITOR_TRACE_SAMPLE_RATE``. Without an endpoint spans are
    still created (ids are stored with predictions) but not exported.
    """
    config: dict[str, Any] = {"sample_rate": sample_rate}
    if otlp.traces_endpoint:
        protocol = "grpc" if otlp.traces_protocol == "grpc" else "http"
        config.update(
            exporter_type="otlp",
            otlp={"protocol": protocol, "endpoint": otlp.traces_endpoint},
        )
    return config


BENTO_FILE = "bento.yaml"
"""BentoML's description of a built bento, one level above its ``src/`` directory."""


def bento_model_tags(source: Path | None = None) -> list[str]:
    """The model tags this code's bento was built with; empty when not run from a bento.

    ``bentoml serve <tag>`` imports the service from ``<bento>/src``; ``source`` is
    this package's directory (``<bento>/src/service``) unless given.
    """
    package = source if source is not None else Path(__file__).resolve().parent
    bento_file = package.parent.parent / BENTO_FILE
    if package.parent.name != "src" or not bento_file.is_file():
        return []
    try:
        info = yaml.safe_load(bento_file.read_text(encoding="utf-8"))
        # BentoML 1.4 lists a service's models under services[].models; models: stays [].
        entries = [*(info.get("models") or ())]
        for service in info.get("services") or ():
            entries.extend(service.get("models") or ())
        tags = [str(entry["tag"]) for entry in entries]
    except (OSError, yaml.YAMLError, AttributeError, KeyError, TypeError) as exc:
        raise BentoMLInternalsChanged(
            f"{bento_file}: no readable services[].models[].tag list; update "
            "service/bentoml_internals.py for this BentoML version"
        ) from exc
    return list(dict.fromkeys(tags))
