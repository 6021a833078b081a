"""The semantic-conventions registry (``docs/semconv/registry/``) and the code agree both ways.

Every span, metric and attribute of ``telemetry/names.py`` and every gauge of the gauge
table has an entry, and every entry is something the code emits, with the same
instrument, unit, description and attributes. A failure prints the YAML to add.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from instrumentation.telemetry import gauge_table, names
from instrumentation.telemetry.instruments import Instruments

REPO = Path(__file__).resolve().parents[2]
REGISTRY = REPO / "docs" / "semconv" / "registry"
MODEL_ATTRIBUTES = (names.ATTR_MODEL_NAME, names.ATTR_MODEL_VERSION)
OPENTELEMETRY_ATTRIBUTES = {names.ATTR_ERROR_TYPE}
"""Attributes the entries reference from OpenTelemetry's own registry, not ours."""
STABILITY = {"development", "alpha", "beta", "release_candidate", "stable"}


def _groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    for path in sorted(REGISTRY.glob("*.yaml")):
        groups.extend(yaml.safe_load(path.read_text(encoding="utf-8"))["groups"])
    return groups


GROUPS = _groups()
ATTRIBUTES = {a["id"]: a for g in GROUPS if g["type"] == "attribute_group" for a in g["attributes"]}
SPANS = {g["id"].removeprefix("span."): g for g in GROUPS if g["type"] == "span"}
METRICS = {g["metric_name"]: g for g in GROUPS if g["type"] == "metric"}


def _constants(prefix: str) -> set[str]:
    return {v for k, v in vars(names).items() if k.startswith(prefix) and isinstance(v, str)}


def _yaml(entry: dict[str, Any]) -> str:
    return "\n" + yaml.safe_dump({"groups": [entry]}, sort_keys=False, width=100)


class RecordingMeter:
    """A meter that remembers each instrument made from it: name → (instrument, unit)."""

    def __init__(self) -> None:
        self.made: dict[str, tuple[str, str]] = {}

    def _make(self, kind: str) -> Any:
        def make(name: str, unit: str = "", description: str = "", **advice: Any) -> None:
            self.made[name] = (kind, unit)

        return make

    def __getattr__(self, attr: str) -> Any:
        kind = attr.removeprefix("create_")
        return self._make({"up_down_counter": "updowncounter"}.get(kind, kind))


def test_every_group_has_the_model_formats_required_fields() -> None:
    assert len(GROUPS) == len({g["id"] for g in GROUPS}), "group ids are unique"
    for group in GROUPS:
        assert group["type"] in {"attribute_group", "metric", "span", "event"}, group["id"]
        assert group["brief"], group["id"]
        if group["type"] != "attribute_group":
            assert group["stability"] in STABILITY, group["id"]
        if group["type"] == "metric":
            assert group["id"] == f"metric.{group['metric_name']}"
            assert group["instrument"] in {"counter", "histogram", "gauge", "updowncounter"}
            assert group["unit"], group["id"]
    for attribute in ATTRIBUTES.values():
        assert attribute["stability"] in STABILITY and attribute["brief"], attribute["id"]
        assert attribute["id"].startswith("ml."), attribute["id"]


def test_every_reference_names_a_registered_attribute() -> None:
    refs = {a["ref"] for g in GROUPS for a in g.get("attributes", []) if "ref" in a}
    assert refs - OPENTELEMETRY_ATTRIBUTES <= set(ATTRIBUTES), refs - set(ATTRIBUTES)


def test_every_attribute_name_has_an_entry_and_every_entry_a_name() -> None:
    ours = _constants("ATTR_") - OPENTELEMETRY_ATTRIBUTES
    missing = ours - set(ATTRIBUTES)
    assert not missing, "add to attributes.yaml:" + "".join(
        _yaml({"id": n, "type": "string", "stability": "development", "brief": "…"})
        for n in sorted(missing)
    )
    assert set(ATTRIBUTES) <= ours, f"nothing emits {sorted(set(ATTRIBUTES) - ours)}"


def test_every_span_has_an_entry_and_every_entry_a_span() -> None:
    assert set(SPANS) == _constants("SPAN_")
    for span in SPANS.values():
        refs = [a["ref"] for a in span["attributes"]]
        assert refs[:2] == list(MODEL_ATTRIBUTES), span["id"]


def test_every_instrument_has_an_entry_with_its_kind_and_unit() -> None:
    meter = RecordingMeter()
    Instruments(meter)  # type: ignore[arg-type]  # records the create_* calls only
    assert set(meter.made) == _constants("METRIC_")
    for name, (kind, unit) in meter.made.items():
        expected = {
            "id": f"metric.{name}",
            "type": "metric",
            "metric_name": name,
            "stability": "development",
            "brief": "…",
            "instrument": kind,
            "unit": unit,
        }
        assert name in METRICS, "add to metrics.yaml:" + _yaml(expected)
        assert (METRICS[name]["instrument"], METRICS[name]["unit"]) == (kind, unit), name


@pytest.mark.parametrize("gauge", gauge_table.GAUGES, ids=lambda g: g.name)
def test_every_gauge_has_its_entry(gauge: gauge_table.Gauge) -> None:
    expected = {
        "id": f"metric.{gauge.name}",
        "type": "metric",
        "metric_name": gauge.name,
        "stability": "development",
        "brief": gauge.description,
        "instrument": "gauge",
        "unit": gauge.unit or "1",
        "attributes": [{"ref": a} for a in (*MODEL_ATTRIBUTES, *gauge.attributes)],
    }
    assert gauge.name in METRICS, "add to gauges.yaml:" + _yaml(expected)
    entry = METRICS[gauge.name]
    assert (entry["instrument"], entry["unit"], entry["brief"]) == (
        "gauge",
        gauge.unit or "1",  # the model format writes a dimensionless unit as "1"
        gauge.description,
    )
    assert [a["ref"] for a in entry["attributes"]] == [*MODEL_ATTRIBUTES, *gauge.attributes]


def test_every_gauge_entry_is_a_gauge_of_the_table() -> None:
    registered = {n for n, g in METRICS.items() if g["instrument"] == "gauge"}
    assert registered == {g.name for g in gauge_table.GAUGES}
