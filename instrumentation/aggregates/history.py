"""Figures over time: the window ending at each step of a range, from per-bucket cells.

``GET /monitor`` sums each window's buckets once. A chart needs the same window
ending at every step of a range (a day at one-minute steps is 1,441 windows): summing
each again would cost points × buckets × cells. Instead each cell's running sum over
the buckets is taken once (numpy ``cumsum`` over a buckets × cells matrix), and the
window ``[t − window, t)`` is the difference of two rows of it, for every point at
once. The figures of all points are then computed at once by
:mod:`instrumentation.metrics.series`, each function equal to the one-window function
the report uses (a regressor's few figures are that function, point by point), so a
point equals what ``GET /monitor`` reported for that window (counts exactly, float
sums to rounding; the contract test compares every point on both engines).

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
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from instrumentation.aggregates import AggregateBook
from instrumentation.aggregates.drift import DriftSection
from instrumentation.aggregates.fairness import FairnessSection
from instrumentation.aggregates.quality import read_regression
from instrumentation.aggregates.running_sums import (
    MAX_POINTS,
    RANGE_ERROR,
    STEP_ERROR,
    TOO_MANY_POINTS,
    RunningSums,
    Span,
    Windows,
)
from instrumentation.config import ROLLUP_SECONDS, MonitorConfig
from instrumentation.metrics import regression, series
from instrumentation.spec import ModelSpec
from instrumentation.store.buckets import bucket_of
from instrumentation.store.protocol import PredictionStore, VersionInfo

DISPARITIES: Final = (
    "demographic_parity_difference",
    "equalized_odds_difference",
    "equal_opportunity_difference",
)
"""The disparities charted for a binary classifier: fairlearn's, ``method="between_groups"``
(equalized odds with ``agg="worst_case"``), over the groups with enough rows."""

AUTO_POINTS: Final = 240
"""Most points of a history whose step is not given."""

Point = dict[str, Any]
Series = list[Point]
Floats = npt.NDArray[np.float64]

__all__ = [
    "MAX_POINTS",
    "RANGE_ERROR",
    "STEP_ERROR",
    "TOO_MANY_POINTS",
    "read_history",
    "retention",
    "version_history",
]


def _series(times: list[int], value: Any, n: Any, lower: Any = None, upper: Any = None) -> Series:
    """Points ``{t, value, lower, upper, n}`` from rows of figures (NaN → ``None``)."""
    values = series.to_values(value)
    counts = np.asarray(n, dtype=np.float64).round().astype(np.int64).tolist()
    if lower is None or upper is None:
        return [
            {"t": t, "value": v, "lower": None, "upper": None, "n": c if v is not None else 0}
            for t, v, c in zip(times, values, counts, strict=True)
        ]
    lows, highs = series.to_values(lower), series.to_values(upper)
    return [
        {"t": t, "value": v, "lower": lo, "upper": hi, "n": c if v is not None else 0}
        for t, v, lo, hi, c in zip(times, values, lows, highs, counts, strict=True)
    ]


def _rate_series(times: list[int], successes: Any, n: Any) -> Series:
    value, lower, upper = series.rates(successes, n)
    return _series(times, value, n, lower, upper)


def version_history(
    book: AggregateBook, buckets: Mapping[int, Mapping[str, float]], span: Span
) -> dict[str, Any]:
    """One version's series over ``span`` from its per-bucket cells (see the module doc).

    ``buckets``: bucket start → that bucket's summed cells by encoded key, covering at
    least ``[span.first_bucket(), span.end)``.
    """
    spec = book.spec
    w = Windows(RunningSums(buckets), span)
    times = w.times
    out: dict[str, Any] = {
        name: _series(times, counts, counts)
        for name in ("predictions", "labels")
        for counts in [w.column(name, counts=True, per_step=True)]
    }
    if spec.is_classifier:
        out["quality"] = _classifier_quality(w, spec.classes)
        n = w.column("estimate", "n", counts=True)
        value, lower, upper = series.estimated_accuracy(
            n, w.column("estimate", "conf_sum"), w.column("estimate", "conf_sq_sum")
        )
        out["estimated"] = {"accuracy": _series(times, value, n, lower, upper)}
    else:
        out["quality"] = _regression_quality(w)
    sections = {type(s): s for s in book.sections}
    drift_section = sections[DriftSection]
    assert isinstance(drift_section, DriftSection)
    out["drift"] = {
        "psi": {
            feature: _psi(w, feature, len(ref.shares), ref.shares)
            for feature, ref in drift_section.features.items()
        },
        "psi_threshold": drift_section.psi_threshold,
    }
    fairness_section = sections[FairnessSection]
    assert isinstance(fairness_section, FairnessSection)
    if spec.task == "binary":
        out["fairness"] = {
            attribute: _binary_fairness(w, spec.classes, attribute, fairness_section.min_samples)
            for attribute in spec.sensitive_attributes
        }
    elif spec.task == "regression":
        out["fairness"] = _regression_fairness(w, fairness_section)
    else:
        out["fairness"] = {}  # multiclass: per class in GET /monitor, not charted
    return out


def _classifier_quality(w: Windows, classes: tuple[str, ...]) -> dict[str, Any]:
    """Accuracy and per-class recall and precision (as ``classification_quality``)."""
    cm = w.confusion(classes, "confusion")
    tp = np.diagonal(cm, axis1=1, axis2=2)
    actual, predicted = cm.sum(axis=2), cm.sum(axis=1)
    times = w.times
    return {
        "accuracy": _rate_series(times, tp.sum(axis=1), cm.sum(axis=(1, 2))),
        "recall": {c: _rate_series(times, tp[:, k], actual[:, k]) for k, c in enumerate(classes)},
        "precision": {
            c: _rate_series(times, tp[:, k], predicted[:, k]) for k, c in enumerate(classes)
        },
    }


def _psi(w: Windows, feature: str, bins: int, shares: Any) -> Series:
    counts = np.stack([w.column("drift", feature, str(b), counts=True) for b in range(bins)], 1)
    return _series(w.times, series.psi(shares, counts), counts.sum(axis=1))


def _binary_fairness(
    w: Windows, classes: tuple[str, ...], attribute: str, min_samples: int
) -> dict[str, Any]:
    """Per-group selection rate and TPR, and the disparities (as ``FairnessSection``)."""
    names = sorted({k[2] for k in w.keys if k[0] == "group_confusion" and k[1] == attribute})
    times = w.times
    groups: dict[str, Any] = {}
    rows: list[tuple[npt.NDArray[Any], ...]] = []
    for group in names:
        cm = w.confusion(classes, "group_confusion", attribute, group)
        tp, fn, fp, tn = cm[:, 1, 1], cm[:, 1, 0], cm[:, 0, 1], cm[:, 0, 0]
        n = tp + fn + fp + tn
        present = np.zeros(len(times), dtype=bool)
        for a in classes:
            for p in classes:
                present |= w.seen("group_confusion", attribute, group, a, p)
        enough = present & (n >= min_samples)
        shown = np.where(enough, n, 0.0)  # too few rows: undefined, "not enough data"
        positives = np.where(enough, tp + fn, 0.0)
        groups[group] = {
            "selection_rate": _rate_series(times, np.where(enough, tp + fp, 0.0), shown),
            "tpr": _rate_series(times, np.where(enough, tp, 0.0), positives),
        }
        for name, points in groups[group].items():
            _keep_n(points, np.where(present, n, 0.0) if name == "selection_rate" else None)
        rows.append((tp, fn, fp, tn, present & (n > 0) & (n >= min_samples)))
    return {"groups": groups, "disparities": _disparities(times, rows)}


def _keep_n(points: Series, n: Floats | None) -> None:
    """An undefined group figure still says how many rows it rests on (``n``)."""
    if n is None:
        return
    for point, count in zip(points, n.round().astype(np.int64).tolist(), strict=True):
        if point["value"] is None:
            point["n"] = count


def _disparities(times: list[int], rows: list[tuple[npt.NDArray[Any], ...]]) -> dict[str, Series]:
    """Between-groups differences of ``fairness.disparities`` over the kept groups."""
    if not rows:
        nothing = np.full(len(times), np.nan)
        return {name: _series(times, nothing, np.zeros(len(times))) for name in DISPARITIES}
    tp, fn, fp, tn, kept = (np.stack(column, axis=1) for column in zip(*rows, strict=True))
    n = tp + fn + fp + tn
    with np.errstate(divide="ignore", invalid="ignore"):
        selection = (tp + fp) / n
    kept_mask = kept.astype(bool)
    tpr = series.between_groups(series.fairlearn_rate(tp, tp + fn), kept_mask)
    fpr = series.between_groups(series.fairlearn_rate(fp, fp + tn), kept_mask)
    total = np.where(kept_mask, n, 0.0).sum(axis=1)
    figures = {
        "demographic_parity_difference": series.between_groups(selection, kept_mask),
        "equalized_odds_difference": np.fmax(tpr, fpr),
        "equal_opportunity_difference": tpr,
    }
    return {name: _series(times, figures[name], total) for name in DISPARITIES}


def _regression_quality(w: Windows) -> dict[str, Any]:
    """MAE, RMSE, MAPE and R² per point (``regression_quality``: cheap, point by point)."""
    out: dict[str, Series] = {}
    for i, t in enumerate(w.times):
        figures = regression.regression_quality(read_regression(w.cells(i), "regression"))
        for name, figure in figures.items():
            out.setdefault(name, []).append(_point(t, figure))
    return out


def _regression_fairness(w: Windows, section: FairnessSection) -> dict[str, Any]:
    """Per-group MAE and its spread per point, from the section's own report."""
    out: dict[str, Any] = {}
    for i, t in enumerate(w.times):
        for attribute, figures in section.report(w.cells(i)).items():
            node = out.setdefault(attribute, {"groups": {}, "disparities": {}})
            for group, report in figures["groups"].items():
                points = node["groups"].setdefault(group, {}).setdefault("mae", [])
                points.extend(_point(u, {}) for u in w.times[len(points) : i])
                points.append(_point(t, report.get("mae", {"n": report.get("n", 0)})))
            gap = figures["disparities"]["mae_difference"]
            node["disparities"].setdefault("mae_difference", []).append(_point(t, gap))
    for node in out.values():
        for group in node["groups"].values():
            points = group["mae"]
            points.extend(_point(t, {}) for t in w.times[len(points) :])
    return out


def _point(t: int, figure: Mapping[str, Any]) -> Point:
    return {
        "t": t,
        "value": figure.get("value"),
        "lower": figure.get("lower"),
        "upper": figure.get("upper"),
        "n": figure.get("n", 0),
    }


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
    step: float | None = None,
    start: float | None = None,
    end: float | None = None,
) -> dict[str, Any]:
    """Every version's series (newest version first) over ``[start, end]``, read from ``store``.

    ``end`` defaults to the end of the bucket holding ``now`` (the last point is then
    the window ``GET /monitor`` reports now), ``start`` to one window before it;
    both are rounded down to the bucket width. ``step`` defaults to the fewest whole
    buckets that keep the range within :data:`AUTO_POINTS` points.
    ``book_of(version, recorded)`` reads a version's cells with its own spec.
    """
    span = _span(config, now=now, window=window, step=step, start=start, end=end)
    since = span.first_bucket()
    seen = store.model_versions(spec.name)
    present = store.versions_with_data(spec.name, since_bucket=since) | {spec.version}
    versions = sorted(present, key=lambda v: -seen[v].first_seen if v in seen else float("inf"))
    longest = max(w.seconds for w in config.windows)
    return {
        "model": {"name": spec.name, "version": spec.version, "task": spec.task},
        "window": int(window),
        "step": span.step,
        "from": span.start,
        "to": span.end,
        "retention": retention(
            now,
            bucket_seconds=config.bucket_seconds,
            rollup_after=config.rollup_after,
            longest=longest,
            rollup_seconds=ROLLUP_SECONDS,
        ),
        "versions": {
            version: version_history(
                book_of(version, seen),
                store.bucket_cells(spec.name, version, since_bucket=since, until_bucket=span.end),
                span,
            )
            for version in versions
        },
    }


def _span(
    config: MonitorConfig,
    *,
    now: float,
    window: float,
    step: float | None,
    start: float | None,
    end: float | None,
) -> Span:
    """The points :func:`read_history` computes: whole buckets, the last ending at ``end``."""
    width = config.bucket_seconds
    last = int(bucket_of(now, width) + width if end is None else bucket_of(end, width))
    first = last - int(window) if start is None else int(bucket_of(start, width))
    if step is None:
        step = max(1, -(-(last - first) // (AUTO_POINTS * width))) * width
    whole_step = int(step)
    first = last - (last - first) // whole_step * whole_step  # the points end exactly at `last`
    return Span(first, last, whole_step, int(window), width, config.rollup_after, ROLLUP_SECONDS)
