"""Fairness section: per sensitive attribute and group value, the cells fairness needs.

Cells, written at label time (group values already capped by the store)::

    ("group_confusion", attribute, group, actual, predicted)    classifiers
    ("group_regression", attribute, group, field)               regressors

Binary models report one-vs-rest for the positive class (``classes[1]``);
multiclass models report every class one-vs-rest under ``per_class``.
"""

from __future__ import annotations

from typing import Any

from instrumentation.aggregates.cells import Cells, CellWriter
from instrumentation.aggregates.label_columns import LabelColumns
from instrumentation.aggregates.quality import read_regression, target_offset, write_regression
from instrumentation.metrics import fairness, regression
from instrumentation.metrics.result import MetricValue
from instrumentation.spec import ModelSpec
from instrumentation.store.protocol import Label, PredictionRecord


class FairnessSection:
    """Per-group rates and fairlearn disparities (``fairness`` in ``GET /monitor``)."""

    name = "fairness"

    def __init__(self, spec: ModelSpec, *, min_group_samples: int) -> None:
        self.spec = spec
        self.min_samples = min_group_samples
        self._offset = target_offset(spec)

    def on_predictions(self, records: Any, features: Any, w: CellWriter) -> None:
        """Fairness here is over labelled rows: nothing at prediction time."""

    def on_label(self, record: PredictionRecord, label: Label, w: CellWriter) -> None:
        """Cells of one matched label, for each sensitive attribute."""
        for attribute, group in record.groups.items():
            if self.spec.is_classifier:
                if record.label is not None:
                    w.add("group_confusion", attribute, group, str(label), record.label)
            elif record.value is not None:
                kind = ("group_regression", attribute, group)
                write_regression(w, kind, float(label), record.value, self._offset)

    def on_labels(self, columns: LabelColumns, w: CellWriter) -> bool:
        """:meth:`on_label` of every row of a classifier's columns."""
        for groups, rows in columns.group_rows.items():
            for actual, predicted, count in columns.pairs(
                columns.actual[rows], columns.predicted[rows]
            ):
                for attribute, group in groups:
                    w.add("group_confusion", attribute, group, actual, predicted, amount=count)
        return True

    def _groups(self, cells: Cells, kind: str, attribute: str) -> list[str]:
        return sorted({rest[1] for rest, _ in cells.items(kind) if rest[0] == attribute})

    def report(self, cells: Cells) -> dict[str, Any]:
        """The window's fairness figures, by sensitive attribute."""
        out: dict[str, Any] = {}
        for attribute in self.spec.sensitive_attributes:
            if not self.spec.is_classifier:
                out[attribute] = self._regression(cells, attribute)
                continue
            classes = self.spec.classes
            confusions = cells.matrices("group_confusion", classes, attribute)
            per_class = fairness.one_vs_rest(confusions, classes)
            if self.spec.task == "binary":
                out[attribute] = self._binary(per_class[classes[1]])
            else:
                out[attribute] = {"per_class": {c: self._binary(g) for c, g in per_class.items()}}
        return out

    def _binary(self, groups: dict[str, fairness.BinaryCounts]) -> dict[str, Any]:
        rates = fairness.group_rates(groups, min_samples=self.min_samples)
        return {
            "groups": rates["by_group"],
            "overall": rates["overall"],
            "disparities": fairness.disparities(groups, min_samples=self.min_samples),
        }

    def _regression(self, cells: Cells, attribute: str) -> dict[str, Any]:
        groups: dict[str, Any] = {}
        maes: list[float] = []
        total = 0
        for group in self._groups(cells, "group_regression", attribute):
            sums = read_regression(cells, "group_regression", attribute, group)
            total += sums.n
            if sums.n < self.min_samples:
                groups[group] = {"n": sums.n, "insufficient_data": True}
                continue
            groups[group] = {"n": sums.n, **regression.regression_quality(sums)}
            maes.append(sums.abs_error / sums.n)
        gap = MetricValue(max(maes) - min(maes), total) if maes else MetricValue.undefined()
        return {"groups": groups, "disparities": {"mae_difference": gap.to_dict()}}
