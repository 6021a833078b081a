"""Flattening a window report into gauge observations: names from the table, bounded attributes.

Each figure ``{"value", "n", "lower", "upper"}`` becomes the gauges of its
:class:`~instrumentation.telemetry.gauge_table.Figure`: the value, ``.lower`` / ``.upper``
(where it has an interval) and ``.samples`` (its ``n``). Names come only from
``instrumentation.telemetry.gauge_table``: a report figure without a table entry raises
:class:`KeyError` naming it (``WindowGauges`` then drops that collection, and
``tests/unit/test_gauge_table.py`` fails first).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from instrumentation.telemetry import gauge_table as table
from instrumentation.telemetry import names

if TYPE_CHECKING:
    from instrumentation.reports import Reading

GaugePoint = tuple[str, float, dict[str, str]]
"""One observation: gauge name, value, attributes (without the model's)."""

_AVERAGES = ("macro", "micro", "weighted")

NO_GAUGE_ERROR: Final = (
    "report figure {where}.{key} has no gauge in instrumentation.telemetry.gauge_table"
)


def _lookup(section: Mapping[str, Any], where: str, key: str) -> Any:
    try:
        return section[key]
    except KeyError:
        raise KeyError(NO_GAUGE_ERROR.format(where=where, key=key)) from None


class _Emitter:
    def __init__(self) -> None:
        self.points: list[GaugePoint] = []

    def figure(
        self, figure: table.Figure, metric: Mapping[str, Any], attrs: dict[str, str]
    ) -> None:
        for gauge, field in (
            (figure.value, "value"),
            (figure.lower, "lower"),
            (figure.upper, "upper"),
        ):
            value = metric.get(field)
            if gauge is not None and value is not None:
                self.points.append((gauge.name, float(value), attrs))
        self.points.append((figure.samples.name, float(metric["n"]), attrs))
        if figure.baseline_samples is not None:
            baseline = float(metric["n_baseline"])
            self.points.append((figure.baseline_samples.name, baseline, attrs))

    def number(self, gauge: table.Gauge, value: float | bool | None, attrs: dict[str, str]) -> None:
        if value is not None:
            self.points.append((gauge.name, float(value), attrs))

    def per_class_block(
        self, figure: table.Figure, node: Mapping[str, Any], attrs: dict[str, str]
    ) -> None:
        """``{"per_class": {cls: mv}, "macro": mv, ...}`` → class / average attributes."""
        for cls, metric in node["per_class"].items():
            self.figure(figure, metric, {**attrs, names.ATTR_CLASS: cls})
        for average in _AVERAGES:
            if average in node:
                self.figure(figure, node[average], {**attrs, names.ATTR_AVERAGE: average})


def _is_metric(node: Any) -> bool:
    return isinstance(node, Mapping) and "value" in node and "n" in node


def _quality(
    e: _Emitter,
    figures: Mapping[str, table.Figure],
    where: str,
    section: Mapping[str, Any],
    base: dict[str, str],
) -> None:
    for key, node in section.items():
        if _is_metric(node):
            e.figure(_lookup(figures, where, key), node, base)
        elif isinstance(node, Mapping) and "per_class" in node:
            e.per_class_block(_lookup(figures, where, key), node, base)


def _fairness_block(e: _Emitter, block: Mapping[str, Any], attrs: dict[str, str]) -> None:
    for group, report in block.get("groups", {}).items():
        for rate, node in report.items():
            if _is_metric(node):
                figure = _lookup(table.FAIRNESS_GROUP, "fairness.groups", rate)
                e.figure(figure, node, {**attrs, names.ATTR_GROUP: group})
    for metric, node in block.get("disparities", {}).items():
        figure = _lookup(table.FAIRNESS_DISPARITY, "fairness.disparities", metric)
        if _is_metric(node):
            e.figure(figure, node, attrs)
            continue
        for key, inner in node.items():
            if _is_metric(inner):
                e.figure(figure, inner, {**attrs, names.ATTR_FAIRNESS_METHOD: key})
                continue
            for method, leaf in inner.items():
                e.figure(
                    figure,
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
    sources = [(f, r) for f, r in section.get("features", {}).items()]
    sources += [(f"__prediction_{o}__", r) for o, r in section.get("prediction", {}).items()]
    for feature, report in sources:
        attrs = {**base, names.ATTR_FEATURE: feature}
        for statistic, node in report.items():
            if _is_metric(node):
                e.figure(_lookup(table.DRIFT, "drift", statistic), node, attrs)
        e.number(table.DRIFT_DRIFTED, report.get("drifted"), attrs)


def _estimated(e: _Emitter, section: Mapping[str, Any], base: dict[str, str]) -> None:
    figures = {k: v for k, v in section.items() if k != "error"}
    _quality(e, table.ESTIMATED, "estimated", figures, base)
    error = section.get("error")
    if not error:
        return
    for key, node in error.items():
        gauge = _lookup(table.ESTIMATED_ERROR, "estimated.error", key)
        if not isinstance(node, Mapping):
            e.number(gauge, node, base)
            continue
        # "positive" repeats the positive class's per-class gap: not exported twice.
        for cls, value in node["per_class"].items():
            e.number(gauge, value, {**base, names.ATTR_CLASS: cls})
        e.number(gauge, node["macro"], {**base, names.ATTR_AVERAGE: "macro"})


def gauge_points(windows: Mapping[str, Any]) -> list[GaugePoint]:
    """Observations of every defined figure of every window.

    Raises:
        KeyError: a figure of the report has no gauge in the table (``NO_GAUGE_ERROR``).
    """
    e = _Emitter()
    for window, report in windows.items():
        base = {names.ATTR_WINDOW: window}
        _quality(e, table.QUALITY, "quality", report.get("quality", {}), base)
        _fairness(e, report.get("fairness", {}), base)
        _drift(e, report.get("drift", {}), base)
        _estimated(e, report.get("estimated", {}), base)
    return e.points


def comparison_points(comparison: Mapping[str, Any]) -> list[GaugePoint]:
    """Observations of a version comparison (``ModelMonitor.snapshot()["comparison"]``)."""
    e = _Emitter()
    baseline = {names.ATTR_COMPARE_BASELINE: str(comparison["baseline"])}
    for window, section in comparison["windows"].items():
        _quality(e, table.COMPARE, "comparison", section, {names.ATTR_WINDOW: window, **baseline})
    rollout = comparison.get("rollout")
    if rollout is not None:
        _quality(e, table.ROLLOUT, "comparison.rollout", rollout["figures"], baseline)
    return e.points


def alert_points(alerts: Mapping[str, Any]) -> list[GaugePoint]:
    """Observations of a version's sequential alert statistics (``Reading.alerts``)."""
    e = _Emitter()
    for key, metric in alerts.items():
        if key != "fairness":
            e.figure(_lookup(table.ALERTS, "alerts", key), metric, {})
            continue
        for attribute, per_class in metric.items():
            for cls, figures in per_class.items():
                attrs = {names.ATTR_SENSITIVE_ATTRIBUTE: attribute, names.ATTR_CLASS: cls}
                for figure, value in figures.items():
                    e.figure(_lookup(table.ALERT_FAIRNESS, "alerts.fairness", figure), value, attrs)
    return e.points


def reading_points(reading: Reading) -> list[GaugePoint]:
    """Every version's window figures, and the default comparison, each naming its version."""
    points = [
        (name, value, {names.ATTR_MODEL_VERSION: version, **attrs})
        for version, windows in reading.all_windows().items()
        for name, value, attrs in gauge_points(windows) + alert_points(reading.alerts(version))
    ]
    pair = reading.default_pair()
    if pair is not None:
        try:
            comparison = reading.compare(*pair)
        except ValueError:
            return points  # other classes: nothing to compare
        points += [
            (name, value, {names.ATTR_MODEL_VERSION: pair[0], **attrs})
            for name, value, attrs in comparison_points(comparison)
        ]
    return points
