"""A request's matched labels of one model version as columns, for cells counted with numpy.

Per label, a dozen and more cell additions in Python cost more than the join
itself; over columns each kind of cell is one ``bincount`` per request. The
cells equal those of :meth:`AggregateBook.add_label` row by row (a test compares
them): counts exactly; float sums to rounding, except where ``bincount`` adds
the rows in their order, as a row-by-row writer does.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from instrumentation.aggregates.cells import CellWriter
from instrumentation.store.protocol import Label, PredictionRecord

IntArray = npt.NDArray[np.intp]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class LabelColumns:
    """The matched labels of one version: each row a prediction that fits the model's classes.

    ``actual`` and ``predicted`` are class indices; ``scores`` (rows × classes) holds
    the scored rows only, ``scored_actual``/``scored_predicted`` their indices.
    ``group_rows`` maps each distinct groups combination to its rows.
    """

    classes: tuple[str, ...]
    actual: IntArray
    predicted: IntArray
    scores: FloatArray
    scored_actual: IntArray
    scored_predicted: IntArray
    group_rows: Mapping[tuple[tuple[str, str], ...], IntArray]

    @classmethod
    def of(
        cls,
        records: Sequence[PredictionRecord],
        labels: Sequence[Label],
        classes: tuple[str, ...],
    ) -> LabelColumns:
        """Columns of ``records`` (each's ``label`` one of ``classes``) and their labels.

        Raises:
            KeyError: a label or predicted class is not one of ``classes``.
        """
        index = {c: i for i, c in enumerate(classes)}
        actual = np.fromiter((index[str(y)] for y in labels), np.intp, len(labels))
        predicted = np.fromiter((index[r.label] for r in records), np.intp, len(records))  # type: ignore[index]  # checked by the book: every label is a class
        scored = [i for i, r in enumerate(records) if r.scores is not None]
        if len(scored) == len(records):
            scores = np.array([r.scores for r in records], dtype=np.float64)
        else:
            scores = np.array([records[i].scores for i in scored], dtype=np.float64)
        scores = scores.reshape(len(scored), len(classes))
        rows: dict[tuple[tuple[str, str], ...], list[int]] = {}
        for i, record in enumerate(records):
            rows.setdefault(tuple(record.groups.items()), []).append(i)
        return cls(
            classes,
            actual,
            predicted,
            scores,
            actual[scored],
            predicted[scored],
            {groups: np.array(members, dtype=np.intp) for groups, members in rows.items()},
        )

    def pairs(self, actual: IntArray, predicted: IntArray) -> Iterator[tuple[str, str, float]]:
        """``(actual class, predicted class, count)`` of each pair that occurs."""
        k = len(self.classes)
        counts = np.bincount(actual * k + predicted, minlength=k * k)
        for cell in np.flatnonzero(counts):
            yield self.classes[cell // k], self.classes[cell % k], float(counts[cell])


def write_bins(
    w: CellWriter,
    kind: tuple[str, ...],
    bins: IntArray,
    size: int,
    *fields: tuple[str, FloatArray | None],
) -> None:
    """Cells ``(*kind, bin, field)`` (or ``(*kind, bin)`` for one unnamed field) of binned rows.

    Each field is ``(name, weights)``: the rows' count when ``weights`` is None, else
    their weights summed in row order. A bin gets cells only when a row falls in it.
    """
    counts = np.bincount(bins, minlength=size)
    sums = [
        (name, counts if weights is None else np.bincount(bins, weights, minlength=size))
        for name, weights in fields
    ]
    for b in np.flatnonzero(counts):
        for name, values in sums:
            key = (*kind, str(b), name) if name else (*kind, str(b))
            w.add(*key, amount=float(values[b]))


def unit_bins(values: FloatArray, bins: int) -> IntArray:
    """``quality.score_bin``-style bins of values in [0, 1] (1.0 in the last bin)."""
    return np.minimum((values * bins).astype(np.intp), bins - 1)


def in_unit_range(values: FloatArray) -> bool:
    """Whether every value is a number in [0, 1] (what the per-row binning accepts)."""
    return bool(np.all((values >= 0.0) & (values <= 1.0)))
