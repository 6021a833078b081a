"""Flattening a window report into gauge observations: names and bounded attributes.

Each figure ``{"value", "n", "lower", "upper"}`` becomes up to four gauges:
``<name>`` (the value), ``<name>.lower`` / ``<name>.upper`` (its interval, where
one applies) and ``<name>.samples`` (its ``n``), so every rate is exported with
its sample count and alert rules can require enough samples.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from instrumentation import _names as names

GaugePoint = tuple[str, float, dict[str, str]]

_AVERAGES = ("macro", "micro", "weighted")
_GROUP_RATES = (
    "selection_rate",
    "accuracy",
    "precision",
    "tpr",
    "fpr",
    "mae",
    "rmse",
    "mape",
    "r2",
)


class _Emitter:
    def __init__(self, include_undefined: bool) -> None:
        self.include_undefined = include_undefined
        self.points: list[GaugePoint] = []

    def metric(self, name: str, metric: Mapping[str, Any], attrs: dict[str, str]) -> None:
        for suffix, field in (("", "value"), (".lower", "lower"), (".upper", "upper")):
            value = metric.get(field)
            if value is not None or self.include_undefined:
                self.points.append((name + suffix, float(value or 0.0), attrs))
        self.points.append((name + ".samples", float(metric["n"]), attrs))

    def number(self, name: str, value: float | bool | None, attrs: dict[str, str]) -> None:
        if value is not None or self.include_undefined:
            self.points.append((name, float(value or 0.0), attrs))

    def per_class_block(self, name: str, node: Mapping[str, Any], attrs: dict[str, str]) -> None:
        """``{"per_class": {cls: mv}, "macro": mv, ...}`` → class / average attributes."""
        for cls, metric in node["per_class"].items():
            self.metric(name, metric, {**attrs, names.ATTR_CLASS: cls})
        for average in _AVERAGES:
            if average in node:
                self.metric(name, node[average], {**attrs, names.ATTR_AVERAGE: average})


def _is_metric(node: Any) -> bool:
    return isinstance(node, Mapping) and "value" in node and "n" in node


def _quality(e: _Emitter, prefix: str, section: Mapping[str, Any], base: dict[str, str]) -> None:
    for key, node in section.items():
        if _is_metric(node):
            e.metric(prefix + key, node, base)
        elif isinstance(node, Mapping) and "per_class" in node:
            e.per_class_block(prefix + key, node, base)


def _fairness_block(e: _Emitter, block: Mapping[str, Any], attrs: dict[str, str]) -> None:
    prefix = names.METRIC_FAIRNESS_PREFIX
    for group, report in block.get("groups", {}).items():
        for rate in _GROUP_RATES:
            if rate in report:
                e.metric(prefix + rate, report[rate], {**attrs, names.ATTR_GROUP: group})
    for metric, node in block.get("disparities", {}).items():
        if _is_metric(node):
            e.metric(prefix + metric, node, attrs)
            continue
        for key, inner in node.items():
            if _is_metric(inner):
                e.metric(prefix + metric, inner, {**attrs, names.ATTR_FAIRNESS_METHOD: key})
                continue
            for method, leaf in inner.items():
                e.metric(
                    prefix + metric,
                    leaf,
                    {**attrs, names.ATTR_FAIRNESS_AGG: key, names.ATTR_FAIRNESS_METHOD: method},
                )


def _fairness(e: _Emitter, section: Mapping[str, Any], base: dict[str, str]) -> None:
    for attribute, block in section.items():
        attrs = {**base, names.ATTR_SENSITIVE_ATTRIBUTE: attribute}
        if "per_class" in block:
            for cls, inner in block["per_class"].items():
                _fairness_block(e, inner, {**attrs, names.ATTR_CLASS: cls})
        else:
            _fairness_block(e, block, attrs)


def _drift(e: _Emitter, section: Mapping[str, Any], base: dict[str, str]) -> None:
    prefix = names.METRIC_DRIFT_PREFIX
    sources = [(f, r) for f, r in section.get("features", {}).items()]
    sources += [(f"__prediction_{o}__", r) for o, r in section.get("prediction", {}).items()]
    for feature, report in sources:
        attrs = {**base, names.ATTR_FEATURE: feature}
        for statistic, node in report.items():
            if _is_metric(node):
                e.metric(prefix + statistic, node, attrs)
        e.number(prefix + "drifted", report.get("drifted"), attrs)


def _estimated(e: _Emitter, section: Mapping[str, Any], base: dict[str, str]) -> None:
    prefix = names.METRIC_ESTIMATED_PREFIX
    _quality(e, prefix, {k: v for k, v in section.items() if k != "error"}, base)
    error = section.get("error")
    if not error:
        return
    e.number(prefix + "error.accuracy", error["accuracy"], base)
    for key in ("precision", "recall", "f1"):
        node = error.get(key, {})
        for cls, value in node.get("per_class", {}).items():
            e.number(f"{prefix}error.{key}", value, {**base, names.ATTR_CLASS: cls})
        if "macro" in node:
            e.number(f"{prefix}error.{key}", node["macro"], {**base, names.ATTR_AVERAGE: "macro"})


def gauge_points(
    windows: Mapping[str, Any], *, include_undefined: bool = False
) -> list[GaugePoint]:
    """Observations of every figure of every window (undefined ones only when asked)."""
    e = _Emitter(include_undefined)
    for window, report in windows.items():
        base = {names.ATTR_WINDOW: window}
        _quality(e, names.METRIC_QUALITY_PREFIX, report.get("quality", {}), base)
        _fairness(e, report.get("fairness", {}), base)
        _drift(e, report.get("drift", {}), base)
        _estimated(e, report.get("estimated", {}), base)
    return e.points
