"""The aggregate book: the additive cells each prediction and label adds; how windows read them.

Every figure the monitor reports is a function of cells summed over a window's
buckets, so any worker or replica computes the same number from the shared
store, in time independent of traffic volume. Cells are keyed by tuples::

    ("predictions",)                          rows predicted      (prediction time)
    ("labels",)                               labels matched      (label time)
    ("confusion", actual, predicted)          classifier cells    (label time)
    ("scored",) ("log_loss",) ("brier",)      probabilistic sums  (label time)
    ("auc", class, "pos"|"neg", bin)          score histograms    (label time)
    ("calibration", bin, "count"|"conf"|"correct")                (label time)
    ("regression", field)                     RegressionSums      (label time)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from instrumentation import _names as names
from instrumentation.metrics import quality
from instrumentation.spec import ModelSpec
from instrumentation.store.base import (
    AggregateKey,
    Increments,
    Label,
    PredictionRecord,
    bucket_of,
    decode_key,
)

GaugePoint = tuple[str, float, dict[str, str]]

_REGRESSION_FIELDS = ("n", "abs_error", "squared_error", "abs_pct_error", "y", "y_squared")


class AggregateBook:
    """Maps rows to cells and summed cells to the per-window report, for one model spec."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self._class_index = {c: i for i, c in enumerate(spec.classes)}
        # Binary AUC is about the positive class only; multiclass is one-vs-rest for each.
        self._auc_classes = spec.classes[1:] if spec.task == "binary" else spec.classes

    # --- writing -----------------------------------------------------------

    def add_prediction(
        self,
        record: PredictionRecord,
        features: Mapping[str, Any],
        bucket: int,
        out: Increments,
    ) -> None:
        """Cells one prediction adds at prediction time."""
        out.add(record.version, bucket, ("predictions",))

    def add_label(
        self, record: PredictionRecord, label: Label, now: float, out: Increments
    ) -> None:
        """Cells one matched label adds, in the label-time bucket."""
        bucket = bucket_of(now)
        version = record.version
        out.add(version, bucket, ("labels",))
        if not self.spec.is_classifier:
            if record.value is None:
                return
            sums = quality.RegressionSums.from_row(float(label), record.value)
            for name in _REGRESSION_FIELDS:
                out.add(version, bucket, ("regression", name), float(getattr(sums, name)))
            return
        actual = str(label)
        if record.label is not None:
            out.add(version, bucket, ("confusion", actual, record.label))
        if record.scores is not None:
            self._add_scores(record.scores, actual, record.label, version, bucket, out)

    def _add_scores(
        self,
        scores: tuple[float, ...],
        actual: str,
        predicted: str | None,
        version: str,
        bucket: int,
        out: Increments,
    ) -> None:
        true_index = self._class_index[actual]
        out.add(version, bucket, ("scored",))
        out.add(version, bucket, ("log_loss",), quality.log_loss_term(scores, true_index))
        out.add(version, bucket, ("brier",), quality.brier_term(scores, true_index))
        for cls in self._auc_classes:
            side = "pos" if cls == actual else "neg"
            score_bin = quality.score_bin(scores[self._class_index[cls]])
            out.add(version, bucket, ("auc", cls, side, str(score_bin)))
        if predicted is not None:
            confidence = scores[self._class_index[predicted]]
            cal_bin = str(quality.calibration_bin(confidence))
            out.add(version, bucket, ("calibration", cal_bin, "count"))
            out.add(version, bucket, ("calibration", cal_bin, "conf"), confidence)
            out.add(
                version, bucket, ("calibration", cal_bin, "correct"), float(predicted == actual)
            )

    # --- reading -----------------------------------------------------------

    def report(self, sums: Mapping[str, float], *, min_group_samples: int) -> dict[str, Any]:
        """One window's section of ``GET /monitor`` from its summed cells."""
        cells = {decode_key(k): v for k, v in sums.items()}
        return {
            "n_predictions": int(cells.get(("predictions",), 0)),
            "n_labels": int(cells.get(("labels",), 0)),
            "quality": self._quality(cells),
        }

    def _quality(self, cells: Mapping[AggregateKey, float]) -> dict[str, Any]:
        if not self.spec.is_classifier:
            values = {f: cells.get(("regression", f), 0.0) for f in _REGRESSION_FIELDS[1:]}
            n = int(cells.get(("regression", "n"), 0))
            return quality.regression_quality(quality.RegressionSums(n, **values))
        classes = self.spec.classes
        k = len(classes)
        confusion = np.zeros((k, k))
        for (kind, *rest), value in cells.items():
            if kind == "confusion":
                confusion[self._class_index[rest[0]], self._class_index[rest[1]]] = value
        report = quality.classification_quality(confusion, classes)
        report.update(
            quality.probabilistic_quality(
                n=int(cells.get(("scored",), 0)),
                log_loss_sum=cells.get(("log_loss",), 0.0),
                brier_sum=cells.get(("brier",), 0.0),
            )
        )
        report["roc_auc"] = self._roc_auc(cells)
        report["expected_calibration_error"] = self._calibration(cells).to_dict()
        return report

    def _histograms(self, cells: Mapping[AggregateKey, float]) -> tuple[np.ndarray, np.ndarray]:
        index = {c: i for i, c in enumerate(self._auc_classes)}
        pos = np.zeros((len(index), quality.SCORE_BINS))
        neg = np.zeros_like(pos)
        for (kind, *rest), value in cells.items():
            if kind == "auc" and rest[0] in index:
                target = pos if rest[1] == "pos" else neg
                target[index[rest[0]], int(rest[2])] = value
        return pos, neg

    def _roc_auc(self, cells: Mapping[AggregateKey, float]) -> dict[str, Any]:
        pos, neg = self._histograms(cells)
        if self.spec.task == "binary":
            return quality.roc_auc_binned(pos[0], neg[0])
        return quality.roc_auc_ovr_macro(pos, neg)

    def _calibration(self, cells: Mapping[AggregateKey, float]) -> Any:
        count = np.zeros(quality.CALIBRATION_BINS)
        conf = np.zeros_like(count)
        correct = np.zeros_like(count)
        columns = {"count": count, "conf": conf, "correct": correct}
        for (kind, *rest), value in cells.items():
            if kind == "calibration":
                columns[rest[1]][int(rest[0])] = value
        return quality.expected_calibration_error(count, conf, correct)

    # --- gauges ------------------------------------------------------------

    def gauge_names(self) -> list[tuple[str, str]]:
        """Every gauge this book can report, with its unit (instruments are made once)."""
        empty = {"_": self.report({}, min_group_samples=0)}
        seen: dict[str, str] = {}
        for name, _, _ in _walk(empty, include_undefined=True):
            seen.setdefault(name, "1")
        return sorted(seen.items())

    def gauge_points(self, windows: Mapping[str, Any]) -> list[GaugePoint]:
        """Observations of every defined figure of every window."""
        return _walk(windows, include_undefined=False)


_SECTION_PREFIX = {
    "quality": names.METRIC_QUALITY_PREFIX,
}
_AVERAGES = ("macro", "micro", "weighted")


def _is_metric(node: Any) -> bool:
    return isinstance(node, dict) and "value" in node and "n" in node


def _walk(windows: Mapping[str, Any], *, include_undefined: bool) -> list[GaugePoint]:
    points: list[GaugePoint] = []

    def emit(name: str, metric: Mapping[str, Any], attrs: dict[str, str]) -> None:
        for suffix, field in (("", "value"), (".lower", "lower"), (".upper", "upper")):
            value = metric.get(field)
            if value is not None or include_undefined:
                points.append((name + suffix, float(value or 0.0), attrs))
        points.append((name + ".samples", float(metric["n"]), attrs))

    for window, report in windows.items():
        for section, prefix in _SECTION_PREFIX.items():
            for key, node in report.get(section, {}).items():
                base = {names.ATTR_WINDOW: window}
                if _is_metric(node):
                    emit(prefix + key, node, base)
                elif isinstance(node, dict) and "per_class" in node:
                    for cls, metric in node["per_class"].items():
                        emit(prefix + key, metric, {**base, names.ATTR_CLASS: cls})
                    for average in _AVERAGES:
                        if average in node:
                            emit(prefix + key, node[average], {**base, names.ATTR_AVERAGE: average})
    return points
