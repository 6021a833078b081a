"""The aggregate book: the additive cells each prediction and label adds; how windows read them.

Every figure the monitor reports is a function of cells summed over a window's
buckets, so any worker or replica computes the same number from the shared
store, in time independent of traffic volume. One section per concern, each
documenting its own cells::

    ("predictions",)   rows predicted   (prediction-time bucket)
    ("labels",)        labels matched   (label-time bucket)
    quality.py  fairness.py  drift.py  estimate.py

A label's comparison cells (confusion; regression ``n``, ``abs_error``,
``squared_error``; per-group confusion) are also accumulated model-wide, over every label
of the version (:mod:`instrumentation.store.rollout`), for the comparison since a rollout
began and the fairness gaps' confidence sequences.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from instrumentation.aggregates.cells import Cells, CellWriter, SummingWriter
from instrumentation.aggregates.drift import DriftSection
from instrumentation.aggregates.estimate import EstimateSection
from instrumentation.aggregates.fairness import FairnessSection
from instrumentation.aggregates.label_columns import LabelColumns
from instrumentation.aggregates.quality import QualitySection
from instrumentation.config import MonitorConfig
from instrumentation.spec import ModelSpec
from instrumentation.store.buckets import DEFAULT_BUCKET_SECONDS, bucket_of
from instrumentation.store.keys import AggregateKey
from instrumentation.store.protocol import Increments, Label, LabelAggregator, PredictionRecord
from instrumentation.store.rollout import add_cumulative

ROLLOUT_REGRESSION_FIELDS = frozenset({"n", "abs_error", "squared_error"})
"""The regression sums a rollout comparison of MAE needs."""


def is_rollout_cell(key: AggregateKey) -> bool:
    """Whether a label cell is kept over every label (confusions, MAE's sums)."""
    if key[0] in ("confusion", "group_confusion"):
        return True
    return key[0] == "regression" and len(key) == 2 and key[1] in ROLLOUT_REGRESSION_FIELDS


class Section(Protocol):
    """One part of a window report and the cells behind it."""

    name: str

    def on_predictions(
        self,
        records: Sequence[PredictionRecord],
        features: Sequence[Mapping[str, Any]],
        w: CellWriter,
    ) -> None: ...

    def on_label(self, record: PredictionRecord, label: Label, w: CellWriter) -> None: ...

    def on_labels(self, columns: LabelColumns, w: CellWriter) -> bool:
        """A classifier's matched labels at once; False when one cannot be aggregated."""

    def report(self, cells: Cells) -> dict[str, Any]: ...


class AggregateBook:
    """Maps rows to cells and summed cells to the per-window report, for one model spec."""

    def __init__(
        self,
        spec: ModelSpec,
        *,
        min_group_samples: int = 30,
        psi_threshold: float = 0.2,
        min_drift_samples: int = 100,
        bucket_seconds: int = DEFAULT_BUCKET_SECONDS,
    ) -> None:
        self.spec = spec
        self.bucket_seconds = bucket_seconds
        self.sections: tuple[Section, ...] = (
            QualitySection(spec),
            FairnessSection(spec, min_group_samples=min_group_samples),
            DriftSection(spec, psi_threshold=psi_threshold, min_samples=min_drift_samples),
            EstimateSection(spec),
        )

    @classmethod
    def configured(cls, spec: ModelSpec, config: MonitorConfig) -> AggregateBook:
        """The book of ``spec`` with the group, drift and bucket settings of ``config``."""
        return cls(
            spec,
            min_group_samples=config.min_group_samples,
            psi_threshold=config.psi_threshold,
            min_drift_samples=config.min_drift_samples,
            bucket_seconds=config.bucket_seconds,
        )

    def add_predictions(
        self,
        records: Sequence[PredictionRecord],
        features: Sequence[Mapping[str, Any]],
        out: Increments,
    ) -> None:
        """Cells of a request's predictions, each in its prediction-time bucket.

        Each section counts a whole (version, bucket) group at once and writes each
        distinct cell once: the request path pays per cell, not per row and cell.
        (``tests/unit/per_row_cells.py`` keeps the row-by-row reference these equal.)
        """
        groups: dict[tuple[str, int], list[int]] = {}
        for i, record in enumerate(records):
            cell = (record.version, bucket_of(record.created, self.bucket_seconds))
            groups.setdefault(cell, []).append(i)
        for (version, bucket), rows in groups.items():
            writer = CellWriter(out, version, bucket)
            writer.add("predictions", amount=float(len(rows)))
            if len(rows) == len(records):
                batch, inputs = records, features
            else:
                batch, inputs = [records[i] for i in rows], [features[i] for i in rows]
            for section in self.sections:
                section.on_predictions(batch, inputs, writer)

    def add_label(
        self, record: PredictionRecord, label: Label, now: float, out: Increments
    ) -> None:
        """Cells one matched label adds, in the label-time bucket.

        Raises:
            ValueError: the prediction does not fit this model's classes (it was made
                by an earlier version with other ones), so its cells cannot be read
                the same way.
        """
        spec = self.spec
        if not self._fits(record):
            raise ValueError(
                f"prediction of version {record.version!r} does not fit the {spec.task} "
                f"model {spec.version!r} (classes {list(spec.classes)})"
            )
        own = Increments()
        writer = CellWriter(own, record.version, bucket_of(now, self.bucket_seconds))
        writer.add("labels")
        for section in self.sections:
            section.on_label(record, label, writer)
        out.merge(own)
        add_cumulative(out, own, keep=is_rollout_cell)

    def add_labels(
        self, pairs: Sequence[tuple[PredictionRecord, Label]], now: float, out: Increments
    ) -> bool:
        """:meth:`add_label` of every pair, summed here first: each cell is added to ``out`` once.

        Returns False, and adds nothing, when any pair would fail :meth:`add_label`
        (a prediction that does not fit, a sum that is not finite): the caller then
        adds them one by one to tell which (they are rare, and that is exact).
        """
        if not all(map(self._fits, (record for record, _ in pairs))):
            return False
        bucket = bucket_of(now, self.bucket_seconds)
        by_version: dict[str, list[tuple[PredictionRecord, Label]]] = {}
        for pair in pairs:
            by_version.setdefault(pair[0].version, []).append(pair)
        own = Increments()
        for version, rows in by_version.items():
            writer = SummingWriter(version, bucket)
            writer.add("labels", amount=float(len(rows)))
            if self.spec.is_classifier:
                added = self._add_columns(rows, writer)
            else:
                added = self._add_rows(rows, writer)
            if not (added and writer.flush(own)):
                return False
        out.merge(own)
        add_cumulative(out, own, keep=is_rollout_cell)
        return True

    def _add_columns(self, pairs: Sequence[tuple[PredictionRecord, Label]], w: CellWriter) -> bool:
        """A classifier's labels, each section counting over columns (see ``label_columns``)."""
        try:
            columns = LabelColumns.of(
                [record for record, _ in pairs], [label for _, label in pairs], self.spec.classes
            )
        except (KeyError, ValueError):  # a label not of the classes, scores of another width
            return False
        return all(section.on_labels(columns, w) for section in self.sections)

    def _add_rows(self, pairs: Sequence[tuple[PredictionRecord, Label]], w: CellWriter) -> bool:
        """A regressor's labels, row by row (summed by the writer)."""
        try:
            for record, label in pairs:
                for section in self.sections:
                    section.on_label(record, label, w)
        except ValueError:
            return False
        return True

    def label_aggregator(self) -> LabelAggregator:
        """:meth:`add_label`, with :meth:`add_labels` as its ``many`` (see ``join_labels``)."""
        return _BookAggregator(self)

    def _fits(self, record: PredictionRecord) -> bool:
        """Whether ``record`` has this model's output shape (class and scores, or value)."""
        if not self.spec.is_classifier:
            return record.value is not None
        if record.label not in self.spec.classes:
            return False
        return record.scores is None or len(record.scores) == len(self.spec.classes)

    def report(self, sums: Mapping[str, float]) -> dict[str, Any]:
        """One window's section of ``GET /monitor`` from its summed cells."""
        cells = Cells(sums)
        report: dict[str, Any] = {
            "n_predictions": cells.count("predictions"),
            "n_labels": cells.count("labels"),
        }
        for section in self.sections:
            report[section.name] = section.report(cells)
        return report


class _BookAggregator:
    """A ``LabelAggregator`` that can also take a request's labels at once."""

    def __init__(self, book: AggregateBook) -> None:
        self._book = book

    def __call__(self, record: PredictionRecord, label: Label, now: float, out: Increments) -> None:
        self._book.add_label(record, label, now, out)

    def many(
        self, pairs: Sequence[tuple[PredictionRecord, Label]], now: float, out: Increments
    ) -> bool:
        return self._book.add_labels(pairs, now, out)


__all__ = ["AggregateBook"]
