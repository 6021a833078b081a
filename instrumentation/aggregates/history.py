"""Figures over time: the window ending at each step of a range, from per-bucket cells.

``GET /monitor`` sums each window's buckets once. A chart needs the same window
ending at every step of a range (a day at one-minute steps is 1,441 windows): summing
each again would cost points × buckets × cells. Instead each cell's running sum over
the buckets is taken once (numpy ``cumsum`` over a buckets × cells matrix), and the
window ``[t − window, t)`` is the difference of two rows of it, for every point at
once. Each point's figures are then the very functions the window report uses, on
those sums, so a point equals what ``GET /monitor`` reported for that window (counts
exactly, float sums to rounding).

A point at ``t`` (a bucket boundary) covers the buckets starting in
``[t − window, t)``: ``GET /monitor`` read at any time inside the bucket before
``t`` sums the same ones. Windows longer than ``rollup_after`` start at the next
whole hour, as there.

Only the cells the charts draw are read into the matrix (no AUC or calibration
histograms). Shown per version, each series a list of ``{t, value, lower, upper, n}``:

    predictions, labels            rows predicted / labels matched in each step
    quality                        accuracy, per-class recall and precision (classifiers);
                                   mae, rmse, mape, r2 (regressors)
    estimated                      the label-free estimate of accuracy (classifiers)
    drift                          PSI per input feature (threshold beside it)
    fairness                       per sensitive attribute: per-group selection rate and
                                   TPR (binary) or MAE (regression), and the disparities
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from instrumentation.aggregates import AggregateBook
from instrumentation.aggregates.cells import Cells
from instrumentation.aggregates.drift import DriftSection
from instrumentation.aggregates.estimate import EstimateSection
from instrumentation.aggregates.fairness import FairnessSection
from instrumentation.aggregates.quality import read_regression
from instrumentation.config import ROLLUP_SECONDS, MonitorConfig
from instrumentation.metrics import quality
from instrumentation.metrics.intervals import rate
from instrumentation.spec import ModelSpec
from instrumentation.store.base import PredictionStore, VersionInfo, bucket_of, decode_key

CHARTED_KINDS: Final = frozenset(
    {
        "predictions",
        "labels",
        "confusion",
        "regression",
        "estimate",
        "drift",
        "group_confusion",
        "group_regression",
    }
)
"""Cell kinds the history reads; the others (AUC, calibration, losses) are not charted."""

DISPARITIES: Final = (
    ("demographic_parity_difference", ("demographic_parity_difference", "between_groups")),
    (
        "equalized_odds_difference",
        ("equalized_odds_difference", "worst_case", "between_groups"),
    ),
    ("equal_opportunity_difference", ("equal_opportunity_difference", "between_groups")),
)
"""The disparities charted for a classifier, and where each sits in the fairness report."""

GROUP_RATES: Final = ("selection_rate", "tpr")
"""The per-group rates charted for a classifier."""

MAX_POINTS: Final = 5000
"""Most points one history returns (a week at two-minute steps is 5,041)."""

TOO_MANY_POINTS: Final = "the range holds {n} steps; at most {max} (widen step or narrow range)"
STEP_ERROR: Final = "step and window must be whole multiples of the bucket width ({width} s)"
RANGE_ERROR: Final = "from must be before to"

Point = dict[str, Any]
Series = list[Point]


@dataclass(frozen=True)
class Span:
    """The points of a history: ``t = start, start + step, …, end`` and each window's width.

    ``rollup_after``: windows longer than it start at the next whole hour (as in the
    window report, whose old edge is hour buckets).
    """

    start: int
    end: int
    step: int
    window: int
    bucket_seconds: int
    rollup_after: float
    rollup_seconds: int

    def __post_init__(self) -> None:
        width = self.bucket_seconds
        if self.step % width or self.window % width or self.step <= 0 or self.window <= 0:
            raise ValueError(STEP_ERROR.format(width=width))
        if self.start > self.end:
            raise ValueError(RANGE_ERROR)
        n = (self.end - self.start) // self.step + 1
        if n > MAX_POINTS:
            raise ValueError(TOO_MANY_POINTS.format(n=n, max=MAX_POINTS))

    def times(self) -> npt.NDArray[np.int64]:
        """Each point's ``t``: the end of its window, oldest first."""
        return np.arange(self.start, self.end + 1, self.step, dtype=np.int64)

    def window_starts(self, t: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Where each point's window starts (rounded up to the hour past ``rollup_after``)."""
        since = t - self.window
        if self.window > self.rollup_after:
            hour = self.rollup_seconds
            since = -(-since // hour) * hour
        return since

    def first_bucket(self) -> int:
        """The oldest bucket any point reads."""
        t = self.times()
        return int(min(self.window_starts(t)[0], t[0] - self.step))


class _Sums:
    """Running sums of the charted cells over one version's buckets, and their presence."""

    def __init__(self, buckets: Mapping[int, Mapping[str, float]]) -> None:
        columns: dict[str, int] = {}
        starts = sorted(buckets)
        rows: list[int] = []
        cols: list[int] = []
        values: list[float] = []
        for row, bucket in enumerate(starts):
            for key, value in buckets[bucket].items():
                if decode_key(key)[0] not in CHARTED_KINDS:
                    continue
                rows.append(row)
                cols.append(columns.setdefault(key, len(columns)))
                values.append(value)
        dense = np.zeros((len(starts), len(columns)))
        seen = np.zeros((len(starts), len(columns)))
        dense[rows, cols] = values
        seen[rows, cols] = 1.0
        self.starts = np.asarray(starts, dtype=np.int64)
        self.keys = [decode_key(key) for key in columns]
        zero = np.zeros((1, len(columns)))
        self._sums = np.concatenate([zero, np.cumsum(dense, axis=0)])
        self._seen = np.concatenate([zero, np.cumsum(seen, axis=0)])

    def between(
        self, since: npt.NDArray[np.int64], until: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """Each row's cells summed over buckets starting in ``[since, until)``, and which occur."""
        lo = np.searchsorted(self.starts, since, side="left")
        hi = np.searchsorted(self.starts, until, side="left")
        return self._sums[hi] - self._sums[lo], (self._seen[hi] - self._seen[lo]) > 0

    def column(self, *key: str) -> int | None:
        """The column of one cell, None when no bucket holds it."""
        try:
            return self.keys.index(key)
        except ValueError:
            return None


def _cells(keys: list[tuple[str, ...]], row: npt.NDArray[np.float64], present: Any) -> Cells:
    """A :class:`Cells` of one window from its row of sums (keys already decoded)."""
    values = row.tolist()
    return Cells.decoded((keys[i], values[i]) for i in np.flatnonzero(present).tolist())


def _point(t: int, figure: Mapping[str, Any]) -> Point:
    return {
        "t": t,
        "value": figure.get("value"),
        "lower": figure.get("lower"),
        "upper": figure.get("upper"),
        "n": figure.get("n", 0),
    }


def _dig(report: Mapping[str, Any], path: tuple[str, ...]) -> Mapping[str, Any]:
    found: Any = report
    for part in path:
        found = found.get(part, {})
    return found if isinstance(found, Mapping) else {}


class _Collector:
    """Appends each point's figures to its series, creating series as figures appear."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.out: dict[str, Any] = {}

    def add(self, path: tuple[str, ...], index: int, point: Point) -> None:
        node = self.out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        series = node.setdefault(path[-1], [None] * self.n)
        series[index] = point

    def finish(self, times: list[int]) -> dict[str, Any]:
        """Fill the points a series lacks (no such group yet) with undefined ones."""

        def fill(node: dict[str, Any]) -> None:
            for key, value in node.items():
                if isinstance(value, dict):
                    fill(value)
                else:
                    pairs = zip(value, times, strict=True)
                    node[key] = [p if p is not None else _point(t, {}) for p, t in pairs]

        fill(self.out)
        return self.out


def version_history(
    book: AggregateBook, buckets: Mapping[int, Mapping[str, float]], span: Span
) -> dict[str, Any]:
    """One version's series over ``span`` from its per-bucket cells (see the module doc).

    ``buckets``: bucket start → that bucket's summed cells by encoded key, covering at
    least ``[span.first_bucket(), span.end)``.
    """
    spec = book.spec
    sums = _Sums(buckets)
    t = span.times()
    times = t.tolist()
    windows, present = sums.between(span.window_starts(t), t)
    steps, _ = sums.between(t - span.step, t)
    out = _Collector(len(times))
    for name in ("predictions", "labels"):
        col = sums.column(name)
        counts = steps[:, col] if col is not None else np.zeros(len(times))
        for i, (when, count) in enumerate(zip(times, counts.tolist(), strict=True)):
            whole = round(count)
            out.add((name,), i, {**_point(when, {}), "value": whole, "n": whole})
    sections = {type(s): s for s in book.sections}
    estimate = sections[EstimateSection]
    drift_section = sections[DriftSection]
    fairness_section = sections[FairnessSection]
    assert isinstance(drift_section, DriftSection)
    assert isinstance(fairness_section, FairnessSection)
    for i, when in enumerate(times):
        cells = _cells(sums.keys, windows[i], present[i])
        _quality(out, i, when, spec.classes if spec.is_classifier else None, cells)
        if spec.is_classifier:
            accuracy = estimate.report(cells)["accuracy"]
            out.add(("estimated", "accuracy"), i, _point(when, accuracy))
        for feature, figures in drift_section.report(cells)["features"].items():
            out.add(("drift", "psi", feature), i, _point(when, figures["psi"]))
        for attribute, figures in fairness_section.report(cells).items():
            _fairness(out, i, when, attribute, figures, classifier=spec.is_classifier)
    result = out.finish(times)
    if drift_section.features:
        result["drift"]["psi_threshold"] = drift_section.psi_threshold
    return result


def _quality(
    out: _Collector, i: int, when: int, classes: tuple[str, ...] | None, cells: Cells
) -> None:
    """The headline quality figures of one point (as ``classification_quality`` computes them)."""
    if classes is None:
        figures = quality.regression_quality(read_regression(cells, "regression"))
        for name, figure in figures.items():
            out.add(("quality", name), i, _point(when, figure))
        return
    cm = cells.matrix("confusion", classes)
    tp, predicted, actual = np.diag(cm).tolist(), cm.sum(axis=0).tolist(), cm.sum(axis=1).tolist()
    out.add(("quality", "accuracy"), i, _point(when, rate(float(sum(tp)), cm.sum()).to_dict()))
    for k, cls in enumerate(classes):
        out.add(("quality", "recall", cls), i, _point(when, rate(tp[k], actual[k]).to_dict()))
        out.add(("quality", "precision", cls), i, _point(when, rate(tp[k], predicted[k]).to_dict()))


def _fairness(
    out: _Collector, i: int, when: int, attribute: str, figures: Any, *, classifier: bool
) -> None:
    """One attribute's per-group figures and disparities (binary or regression)."""
    if "per_class" in figures:
        return  # multiclass: see GET /monitor
    for group, report in figures["groups"].items():
        for name in GROUP_RATES if classifier else ("mae",):
            figure = report.get(name, {"n": report.get("n", 0)})
            out.add(("fairness", attribute, "groups", group, name), i, _point(when, figure))
    disparities = figures["disparities"]
    if "mae_difference" in disparities:
        wanted: tuple[tuple[str, tuple[str, ...]], ...] = (("mae_difference", ("mae_difference",)),)
    else:
        wanted = DISPARITIES
    for name, path in wanted:
        point = _point(when, _dig(disparities, path))
        out.add(("fairness", attribute, "disparities", name), i, point)


def retention(
    now: float, *, bucket_seconds: int, rollup_after: float, longest: float, rollup_seconds: int
) -> dict[str, Any]:
    """How far back the buckets a history reads are kept (see ``compact_aggregates``).

    Buckets since ``exact_since`` keep their own width, so a window ending anywhere
    after ``exact_since + window`` is exact; older ones are merged into
    ``rollup_seconds`` buckets, and those before ``kept_since`` are dropped.
    """
    return {
        "bucket_seconds": bucket_seconds,
        "rollup_seconds": rollup_seconds,
        "exact_since": int((now - rollup_after) // rollup_seconds * rollup_seconds),
        "kept_since": int((now - longest - rollup_seconds) // bucket_seconds * bucket_seconds),
    }


def read_history(
    store: PredictionStore,
    spec: ModelSpec,
    config: MonitorConfig,
    book_of: Callable[[str, dict[str, VersionInfo]], AggregateBook],
    *,
    now: float,
    window: float,
    step: float,
    start: float | None = None,
    end: float | None = None,
) -> dict[str, Any]:
    """Every version's series (newest version first) over ``[start, end]``, read from ``store``.

    ``end`` defaults to the end of the bucket holding ``now`` (the last point is then
    the window ``GET /monitor`` reports now), ``start`` to one window before it;
    both are rounded down to the bucket width. ``book_of(version, recorded)`` reads
    a version's cells with its own spec.
    """
    width = config.bucket_seconds
    last = int(bucket_of(now, width) + width if end is None else bucket_of(end, width))
    first = last - int(window) if start is None else int(bucket_of(start, width))
    whole_step = int(step)
    first = last - (last - first) // whole_step * whole_step  # the points end exactly at `last`
    span = Span(
        first,
        last,
        whole_step,
        int(window),
        width,
        config.rollup_after,
        ROLLUP_SECONDS,
    )
    since = span.first_bucket()
    seen = store.model_versions(spec.name)
    present = store.versions_with_data(spec.name, since_bucket=since) | {spec.version}
    versions = sorted(present, key=lambda v: -seen[v].first_seen if v in seen else float("inf"))
    longest = max(w.seconds for w in config.windows)
    return {
        "model": {"name": spec.name, "version": spec.version, "task": spec.task},
        "window": int(window),
        "step": whole_step,
        "from": first,
        "to": last,
        "retention": retention(
            now,
            bucket_seconds=width,
            rollup_after=config.rollup_after,
            longest=longest,
            rollup_seconds=ROLLUP_SECONDS,
        ),
        "versions": {
            version: version_history(
                book_of(version, seen),
                store.bucket_cells(spec.name, version, since_bucket=since, until_bucket=last),
                span,
            )
            for version in versions
        },
    }
