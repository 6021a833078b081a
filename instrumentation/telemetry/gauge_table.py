"""Every window gauge of the library, each spelled once: the typed table the exporter reads.

A report figure ``{"value", "n", "lower", "upper"}`` is exported as a :class:`Figure`:
a value gauge, a ``.samples`` gauge with its ``n`` (so alert rules can require
enough samples) and, for rates with a Wilson interval, ``.lower`` / ``.upper``.
Figures have no unit (PSI or a ratio of rates is not a "ratio" in Prometheus'
sense, which would add a ``_ratio`` suffix); sample counts are ``{sample}``, an
annotation that adds no suffix either.

The per-section mappings (``QUALITY``, ``FAIRNESS_GROUP``…) take a report key to
its figure; ``telemetry/gauge_points.py`` flattens reports through them only, and
``tests/unit/test_gauge_table.py`` renders reports of every task to prove the
table and the reports agree both ways. Every gauge also carries
``ml.model.name`` and ``ml.model.version`` (not listed per entry).

A gauge's ``ml.window`` covers exactly the span ``GET /monitor`` reports as that
window's ``from`` and ``to``: a window longer than ``MONITOR_ROLLUP_AFTER`` starts at
its first whole hour (the hour bucket at its old edge holds older data), so a
``24h`` gauge reflects 23 to 24 hours (``instrumentation/reports.py``).

A pure data table (entries and their lookups, no logic): over 400 lines by nature.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from instrumentation.telemetry import names

UNIT_FIGURE: Final = ""
"""Unit of a figure's value and interval bounds (dimensionless, no Prometheus suffix)."""

UNIT_SAMPLES: Final = "{sample}"
"""Unit of a figure's ``.samples`` gauge."""


@dataclass(frozen=True, slots=True)
class Gauge:
    """One observable gauge: full name, unit, description and the attribute keys it carries."""

    name: str
    unit: str
    description: str
    attributes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Figure:
    """The gauges of one report figure: value and samples, and its interval where it has one.

    A difference between two versions also has ``baseline_samples``: the ``n`` of the
    version it is compared with.
    """

    value: Gauge
    samples: Gauge
    lower: Gauge | None = None
    upper: Gauge | None = None
    baseline_samples: Gauge | None = None

    @property
    def gauges(self) -> tuple[Gauge, ...]:
        """Each gauge of the figure, value first."""
        return tuple(
            g
            for g in (self.value, self.lower, self.upper, self.samples, self.baseline_samples)
            if g
        )


def _figure(
    name: str,
    samples: str,
    description: str,
    attributes: tuple[str, ...],
    *,
    lower: str | None = None,
    upper: str | None = None,
) -> Figure:
    """A figure from its full gauge names (each written out where the table is read)."""

    def bound(full: str | None, which: str) -> Gauge | None:
        if full is None:
            return None
        text = f"{which} bound of the 95% Wilson interval of {name}."
        return Gauge(full, UNIT_FIGURE, text, attributes)

    return Figure(
        Gauge(name, UNIT_FIGURE, description, attributes),
        Gauge(samples, UNIT_SAMPLES, f"Samples behind {name}.", attributes),
        bound(lower, "Lower"),
        bound(upper, "Upper"),
    )


# Attribute sets (beyond model name and version), by the shape of the report node.
_WINDOW = (names.ATTR_WINDOW,)
_PER_CLASS = (names.ATTR_WINDOW, names.ATTR_CLASS, names.ATTR_AVERAGE)
_GROUP = (names.ATTR_WINDOW, names.ATTR_SENSITIVE_ATTRIBUTE, names.ATTR_GROUP, names.ATTR_CLASS)
_REGRESSION_GROUP = (names.ATTR_WINDOW, names.ATTR_SENSITIVE_ATTRIBUTE, names.ATTR_GROUP)
_DISPARITY = (
    names.ATTR_WINDOW,
    names.ATTR_SENSITIVE_ATTRIBUTE,
    names.ATTR_CLASS,
    names.ATTR_FAIRNESS_METHOD,
)
_ODDS = (*_DISPARITY, names.ATTR_FAIRNESS_AGG)
_FEATURE = (names.ATTR_WINDOW, names.ATTR_FEATURE)

# --- ml.quality.* : realised quality from matched labels ------------------------------------

QUALITY_ACCURACY: Final = _figure(
    "ml.quality.accuracy",
    "ml.quality.accuracy.samples",
    "Share of labelled predictions that were right.",
    _WINDOW,
    lower="ml.quality.accuracy.lower",
    upper="ml.quality.accuracy.upper",
)
QUALITY_PRECISION: Final = _figure(
    "ml.quality.precision",
    "ml.quality.precision.samples",
    "Precision per class (ml.class) or averaged (ml.average).",
    _PER_CLASS,
    lower="ml.quality.precision.lower",
    upper="ml.quality.precision.upper",
)
QUALITY_RECALL: Final = _figure(
    "ml.quality.recall",
    "ml.quality.recall.samples",
    "Recall per class (ml.class) or averaged (ml.average).",
    _PER_CLASS,
    lower="ml.quality.recall.lower",
    upper="ml.quality.recall.upper",
)
QUALITY_F1: Final = _figure(
    "ml.quality.f1",
    "ml.quality.f1.samples",
    "F1 per class (ml.class) or averaged (ml.average).",
    _PER_CLASS,
)
QUALITY_LOG_LOSS: Final = _figure(
    "ml.quality.log_loss", "ml.quality.log_loss.samples", "Mean log loss of scored rows.", _WINDOW
)
QUALITY_BRIER_SCORE: Final = _figure(
    "ml.quality.brier_score",
    "ml.quality.brier_score.samples",
    "Mean Brier score of scored rows.",
    _WINDOW,
)
QUALITY_ROC_AUC: Final = _figure(
    "ml.quality.roc_auc",
    "ml.quality.roc_auc.samples",
    "ROC AUC from binned scores (one-vs-rest macro for multiclass).",
    _WINDOW,
)
QUALITY_EXPECTED_CALIBRATION_ERROR: Final = _figure(
    "ml.quality.expected_calibration_error",
    "ml.quality.expected_calibration_error.samples",
    "Expected calibration error of the predicted class's score.",
    _WINDOW,
)
QUALITY_MAE: Final = _figure(
    "ml.quality.mae", "ml.quality.mae.samples", "Mean absolute error.", _WINDOW
)
QUALITY_RMSE: Final = _figure(
    "ml.quality.rmse", "ml.quality.rmse.samples", "Root mean squared error.", _WINDOW
)
QUALITY_MAPE: Final = _figure(
    "ml.quality.mape", "ml.quality.mape.samples", "Mean absolute percentage error.", _WINDOW
)
QUALITY_R2: Final = _figure(
    "ml.quality.r2", "ml.quality.r2.samples", "Coefficient of determination.", _WINDOW
)

# --- ml.fairness.* : per-group rates and disparities ----------------------------------------

FAIRNESS_SELECTION_RATE: Final = _figure(
    "ml.fairness.selection_rate",
    "ml.fairness.selection_rate.samples",
    "Share of a group predicted positive.",
    _GROUP,
    lower="ml.fairness.selection_rate.lower",
    upper="ml.fairness.selection_rate.upper",
)
FAIRNESS_ACCURACY: Final = _figure(
    "ml.fairness.accuracy",
    "ml.fairness.accuracy.samples",
    "Accuracy within a group.",
    _GROUP,
    lower="ml.fairness.accuracy.lower",
    upper="ml.fairness.accuracy.upper",
)
FAIRNESS_PRECISION: Final = _figure(
    "ml.fairness.precision",
    "ml.fairness.precision.samples",
    "Precision within a group.",
    _GROUP,
    lower="ml.fairness.precision.lower",
    upper="ml.fairness.precision.upper",
)
FAIRNESS_TPR: Final = _figure(
    "ml.fairness.tpr",
    "ml.fairness.tpr.samples",
    "True positive rate within a group.",
    _GROUP,
    lower="ml.fairness.tpr.lower",
    upper="ml.fairness.tpr.upper",
)
FAIRNESS_FPR: Final = _figure(
    "ml.fairness.fpr",
    "ml.fairness.fpr.samples",
    "False positive rate within a group.",
    _GROUP,
    lower="ml.fairness.fpr.lower",
    upper="ml.fairness.fpr.upper",
)
FAIRNESS_MAE: Final = _figure(
    "ml.fairness.mae", "ml.fairness.mae.samples", "MAE within a group.", _REGRESSION_GROUP
)
FAIRNESS_RMSE: Final = _figure(
    "ml.fairness.rmse", "ml.fairness.rmse.samples", "RMSE within a group.", _REGRESSION_GROUP
)
FAIRNESS_MAPE: Final = _figure(
    "ml.fairness.mape", "ml.fairness.mape.samples", "MAPE within a group.", _REGRESSION_GROUP
)
FAIRNESS_R2: Final = _figure(
    "ml.fairness.r2", "ml.fairness.r2.samples", "R² within a group.", _REGRESSION_GROUP
)
FAIRNESS_DEMOGRAPHIC_PARITY_DIFFERENCE: Final = _figure(
    "ml.fairness.demographic_parity_difference",
    "ml.fairness.demographic_parity_difference.samples",
    "fairlearn demographic_parity_difference (by ml.fairness.method).",
    _DISPARITY,
)
FAIRNESS_DEMOGRAPHIC_PARITY_RATIO: Final = _figure(
    "ml.fairness.demographic_parity_ratio",
    "ml.fairness.demographic_parity_ratio.samples",
    "fairlearn demographic_parity_ratio (by ml.fairness.method).",
    _DISPARITY,
)
FAIRNESS_EQUALIZED_ODDS_DIFFERENCE: Final = _figure(
    "ml.fairness.equalized_odds_difference",
    "ml.fairness.equalized_odds_difference.samples",
    "fairlearn equalized_odds_difference (by ml.fairness.agg and method).",
    _ODDS,
)
FAIRNESS_EQUALIZED_ODDS_RATIO: Final = _figure(
    "ml.fairness.equalized_odds_ratio",
    "ml.fairness.equalized_odds_ratio.samples",
    "fairlearn equalized_odds_ratio (by ml.fairness.agg and method).",
    _ODDS,
)
FAIRNESS_EQUAL_OPPORTUNITY_DIFFERENCE: Final = _figure(
    "ml.fairness.equal_opportunity_difference",
    "ml.fairness.equal_opportunity_difference.samples",
    "fairlearn equal_opportunity_difference (by ml.fairness.method).",
    _DISPARITY,
)
FAIRNESS_EQUAL_OPPORTUNITY_RATIO: Final = _figure(
    "ml.fairness.equal_opportunity_ratio",
    "ml.fairness.equal_opportunity_ratio.samples",
    "fairlearn equal_opportunity_ratio (by ml.fairness.method).",
    _DISPARITY,
)
FAIRNESS_MAE_DIFFERENCE: Final = _figure(
    "ml.fairness.mae_difference",
    "ml.fairness.mae_difference.samples",
    "Largest minus smallest group MAE.",
    (names.ATTR_WINDOW, names.ATTR_SENSITIVE_ATTRIBUTE),
)

# --- ml.drift.* : serve-time distributions against the training reference --------------------

DRIFT_PSI: Final = _figure(
    "ml.drift.psi", "ml.drift.psi.samples", "Population stability index.", _FEATURE
)
DRIFT_JS_DISTANCE: Final = _figure(
    "ml.drift.js_distance",
    "ml.drift.js_distance.samples",
    "Jensen-Shannon distance on the reference bins.",
    _FEATURE,
)
DRIFT_KS: Final = _figure(
    "ml.drift.ks", "ml.drift.ks.samples", "Binned Kolmogorov-Smirnov statistic.", _FEATURE
)
DRIFT_DRIFTED: Final = Gauge(
    "ml.drift.drifted", UNIT_FIGURE, "1 when PSI is over its threshold, else 0.", _FEATURE
)

# --- ml.estimated.* : performance from calibrated scores, before labels ---------------------

ESTIMATED_ACCURACY: Final = _figure(
    "ml.estimated.accuracy",
    "ml.estimated.accuracy.samples",
    "Accuracy estimated from scores (CBPE).",
    _WINDOW,
    lower="ml.estimated.accuracy.lower",
    upper="ml.estimated.accuracy.upper",
)
ESTIMATED_PRECISION: Final = _figure(
    "ml.estimated.precision",
    "ml.estimated.precision.samples",
    "Precision estimated from scores, per class or averaged.",
    _PER_CLASS,
)
ESTIMATED_RECALL: Final = _figure(
    "ml.estimated.recall",
    "ml.estimated.recall.samples",
    "Recall estimated from scores, per class or averaged.",
    _PER_CLASS,
)
ESTIMATED_F1: Final = _figure(
    "ml.estimated.f1",
    "ml.estimated.f1.samples",
    "F1 estimated from scores, per class or averaged.",
    _PER_CLASS,
)
ESTIMATED_ERROR_ACCURACY: Final = Gauge(
    "ml.estimated.error.accuracy",
    UNIT_FIGURE,
    "Estimated minus realised accuracy of the window's labelled scored rows.",
    _WINDOW,
)
ESTIMATED_ERROR_PRECISION: Final = Gauge(
    "ml.estimated.error.precision",
    UNIT_FIGURE,
    "Estimated minus realised precision, per class or macro.",
    _PER_CLASS,
)
ESTIMATED_ERROR_RECALL: Final = Gauge(
    "ml.estimated.error.recall",
    UNIT_FIGURE,
    "Estimated minus realised recall, per class or macro.",
    _PER_CLASS,
)
ESTIMATED_ERROR_F1: Final = Gauge(
    "ml.estimated.error.f1",
    UNIT_FIGURE,
    "Estimated minus realised F1, per class or macro.",
    _PER_CLASS,
)

# --- lookups by report key (what gauge_points.py reads) ---------------------------------

QUALITY: Final[Mapping[str, Figure]] = MappingProxyType(
    {
        "accuracy": QUALITY_ACCURACY,
        "precision": QUALITY_PRECISION,
        "recall": QUALITY_RECALL,
        "f1": QUALITY_F1,
        "log_loss": QUALITY_LOG_LOSS,
        "brier_score": QUALITY_BRIER_SCORE,
        "roc_auc": QUALITY_ROC_AUC,
        "expected_calibration_error": QUALITY_EXPECTED_CALIBRATION_ERROR,
        "mae": QUALITY_MAE,
        "rmse": QUALITY_RMSE,
        "mape": QUALITY_MAPE,
        "r2": QUALITY_R2,
    }
)
"""``quality`` report key → figure."""

FAIRNESS_GROUP: Final[Mapping[str, Figure]] = MappingProxyType(
    {
        "selection_rate": FAIRNESS_SELECTION_RATE,
        "accuracy": FAIRNESS_ACCURACY,
        "precision": FAIRNESS_PRECISION,
        "tpr": FAIRNESS_TPR,
        "fpr": FAIRNESS_FPR,
        "mae": FAIRNESS_MAE,
        "rmse": FAIRNESS_RMSE,
        "mape": FAIRNESS_MAPE,
        "r2": FAIRNESS_R2,
    }
)
"""Key of a group's report under ``fairness.<attribute>.groups.<group>`` → figure."""

FAIRNESS_DISPARITY: Final[Mapping[str, Figure]] = MappingProxyType(
    {
        "demographic_parity_difference": FAIRNESS_DEMOGRAPHIC_PARITY_DIFFERENCE,
        "demographic_parity_ratio": FAIRNESS_DEMOGRAPHIC_PARITY_RATIO,
        "equalized_odds_difference": FAIRNESS_EQUALIZED_ODDS_DIFFERENCE,
        "equalized_odds_ratio": FAIRNESS_EQUALIZED_ODDS_RATIO,
        "equal_opportunity_difference": FAIRNESS_EQUAL_OPPORTUNITY_DIFFERENCE,
        "equal_opportunity_ratio": FAIRNESS_EQUAL_OPPORTUNITY_RATIO,
        "mae_difference": FAIRNESS_MAE_DIFFERENCE,
    }
)
"""Key under ``fairness.<attribute>.disparities`` → figure."""

DRIFT: Final[Mapping[str, Figure]] = MappingProxyType(
    {"psi": DRIFT_PSI, "js_distance": DRIFT_JS_DISTANCE, "ks": DRIFT_KS}
)
"""Statistic of a feature's or output's drift report → figure (``drifted``: DRIFT_DRIFTED)."""

ESTIMATED: Final[Mapping[str, Figure]] = MappingProxyType(
    {
        "accuracy": ESTIMATED_ACCURACY,
        "precision": ESTIMATED_PRECISION,
        "recall": ESTIMATED_RECALL,
        "f1": ESTIMATED_F1,
    }
)
"""``estimated`` report key → figure."""

ESTIMATED_ERROR: Final[Mapping[str, Gauge]] = MappingProxyType(
    {
        "accuracy": ESTIMATED_ERROR_ACCURACY,
        "precision": ESTIMATED_ERROR_PRECISION,
        "recall": ESTIMATED_ERROR_RECALL,
        "f1": ESTIMATED_ERROR_F1,
    }
)
"""Key under ``estimated.error`` → gauge (a plain difference: no samples, no interval)."""

# --- ml.compare.* : the serving version minus the previous one ------------------------------

_COMPARE = (names.ATTR_WINDOW, names.ATTR_COMPARE_BASELINE)
_COMPARE_CLASS = (*_COMPARE, names.ATTR_CLASS)


def _difference(
    name: str, description: str, interval: str, *, per_class: bool, windowed: bool = True
) -> Figure:
    """A version difference: value, interval, and the samples of each side."""
    attributes: tuple[str, ...] = _COMPARE_CLASS if per_class else _COMPARE
    if not windowed:
        attributes = tuple(a for a in attributes if a != names.ATTR_WINDOW)
    return Figure(
        Gauge(name, UNIT_FIGURE, description, attributes),
        Gauge(
            f"{name}.samples",
            UNIT_SAMPLES,
            f"Samples of the serving version behind {name}.",
            attributes,
        ),
        Gauge(f"{name}.lower", UNIT_FIGURE, f"Lower bound of {name} ({interval}).", attributes),
        Gauge(f"{name}.upper", UNIT_FIGURE, f"Upper bound of {name} ({interval}).", attributes),
        Gauge(
            f"{name}.baseline.samples",
            UNIT_SAMPLES,
            f"Samples of the baseline version behind {name}.",
            attributes,
        ),
    )


_NEWCOMBE = "95% Newcombe hybrid score interval"
COMPARE_ACCURACY: Final = _difference(
    "ml.compare.accuracy",
    "Accuracy of the serving version minus the baseline's.",
    _NEWCOMBE,
    per_class=False,
)
COMPARE_RECALL: Final = _difference(
    "ml.compare.recall",
    "Recall per class (ml.class), serving minus baseline.",
    _NEWCOMBE,
    per_class=True,
)
COMPARE_PRECISION: Final = _difference(
    "ml.compare.precision",
    "Precision per class (ml.class), serving minus baseline.",
    _NEWCOMBE,
    per_class=True,
)
COMPARE_SELECTION_RATE: Final = _difference(
    "ml.compare.selection_rate",
    "Share of labelled rows predicted as each class (ml.class), serving minus baseline.",
    _NEWCOMBE,
    per_class=True,
)
COMPARE_MAE: Final = _difference(
    "ml.compare.mae",
    "Mean absolute error of the serving version minus the baseline's.",
    "95% normal interval, unequal variances",
    per_class=False,
)

COMPARE: Final[Mapping[str, Figure]] = MappingProxyType(
    {
        "accuracy": COMPARE_ACCURACY,
        "recall": COMPARE_RECALL,
        "precision": COMPARE_PRECISION,
        "selection_rate": COMPARE_SELECTION_RATE,
        "mae": COMPARE_MAE,
    }
)
"""Key of a window of ``comparison`` → figure (per-class ones under ``per_class``)."""

# --- ml.compare.rollout.* : the same differences over every label since the rollout began ----

_ANYTIME = (
    "anytime-valid confidence sequence over every label since the rollout began: the true "
    "difference ever leaves it with probability at most MONITOR_ROLLOUT_ALPHA, default 0.05"
)


def _rollout(name: str, description: str, *, per_class: bool) -> Figure:
    """A difference since the rollout began, with its anytime interval: no window."""
    return _difference(name, description, _ANYTIME, per_class=per_class, windowed=False)


ROLLOUT_ACCURACY: Final = _rollout(
    "ml.compare.rollout.accuracy",
    "Accuracy of the newer version minus the baseline's, every label since the rollout began.",
    per_class=False,
)
ROLLOUT_RECALL: Final = _rollout(
    "ml.compare.rollout.recall",
    "Recall per class (ml.class), newer minus baseline, since the rollout began.",
    per_class=True,
)
ROLLOUT_PRECISION: Final = _rollout(
    "ml.compare.rollout.precision",
    "Precision per class (ml.class), newer minus baseline, since the rollout began.",
    per_class=True,
)
ROLLOUT_SELECTION_RATE: Final = _rollout(
    "ml.compare.rollout.selection_rate",
    "Share of labelled rows predicted as each class (ml.class), newer minus baseline, "
    "since the rollout began.",
    per_class=True,
)
ROLLOUT_MAE: Final = _rollout(
    "ml.compare.rollout.mae",
    "Mean absolute error of the newer version minus the baseline's, since the rollout began.",
    per_class=False,
)

ROLLOUT: Final[Mapping[str, Figure]] = MappingProxyType(
    {
        "accuracy": ROLLOUT_ACCURACY,
        "recall": ROLLOUT_RECALL,
        "precision": ROLLOUT_PRECISION,
        "selection_rate": ROLLOUT_SELECTION_RATE,
        "mae": ROLLOUT_MAE,
    }
)
"""Key of ``comparison.rollout.figures`` → figure (per-class ones under ``per_class``)."""

# --- ml.alert.* : sequential statistics, normalised so a rule compares them with 1 ----------

ALERT_ACCURACY_CUSUM: Final = Figure(
    Gauge(
        "ml.alert.accuracy.cusum",
        UNIT_FIGURE,
        "Bernoulli CUSUM of accuracy over MONITOR_ALERT_LOOKBACK, MONITOR_ACCURACY_THRESHOLD "
        "against MONITOR_ACCURACY_WORSE, divided by its threshold MONITOR_CUSUM_H: above 1 "
        "is an alarm whose false-alarm run length is stated in the docs (Alerts you can trust).",
        (),
    ),
    Gauge(
        "ml.alert.accuracy.cusum.samples",
        UNIT_SAMPLES,
        "Labels in the look-back behind ml.alert.accuracy.cusum.",
        (),
    ),
)

ALERT_ESTIMATED_ACCURACY_CUSUM: Final = Figure(
    Gauge(
        "ml.alert.estimated_accuracy.cusum",
        UNIT_FIGURE,
        "Gaussian CUSUM of the label-free estimated accuracy (each prediction's confidence) "
        "over MONITOR_ALERT_LOOKBACK, MONITOR_ACCURACY_THRESHOLD against "
        "MONITOR_ACCURACY_WORSE, divided by MONITOR_CUSUM_H: above 1 is an alarm.",
        (),
    ),
    Gauge(
        "ml.alert.estimated_accuracy.cusum.samples",
        UNIT_SAMPLES,
        "Scored predictions in the look-back behind ml.alert.estimated_accuracy.cusum.",
        (),
    ),
)
ALERT_MAE_CUSUM: Final = Figure(
    Gauge(
        "ml.alert.mae.cusum",
        UNIT_FIGURE,
        "Gaussian CUSUM of the absolute error over MONITOR_ALERT_LOOKBACK, "
        "MONITOR_MAE_THRESHOLD against MONITOR_MAE_WORSE, divided by MONITOR_CUSUM_H: "
        "above 1 is an alarm (regression models, when a threshold is set).",
        (),
    ),
    Gauge(
        "ml.alert.mae.cusum.samples",
        UNIT_SAMPLES,
        "Labels in the look-back behind ml.alert.mae.cusum.",
        (),
    ),
)

_FAIRNESS_ALERT = (names.ATTR_SENSITIVE_ATTRIBUTE, names.ATTR_CLASS)


def _fairness_alert(name: str, gap: str, variable: str) -> Figure:
    """A fairness gap's lower confidence bound divided by its threshold (1: an alarm)."""
    return Figure(
        Gauge(
            name,
            UNIT_FIGURE,
            f"Largest lower bound, over pairs of groups (ml.sensitive_attribute, ml.class), "
            f"of the {gap} gap over every label of the version (anytime-valid, "
            f"MONITOR_ROLLOUT_ALPHA split over the pairs), divided by {variable}: above 1 "
            "is an alarm that a model within the threshold raises with chance at most alpha.",
            _FAIRNESS_ALERT,
        ),
        Gauge(
            f"{name}.samples",
            UNIT_SAMPLES,
            f"Labels of the groups compared behind {name}.",
            _FAIRNESS_ALERT,
        ),
    )


ALERT_DEMOGRAPHIC_PARITY: Final = _fairness_alert(
    "ml.alert.fairness.demographic_parity",
    "selection-rate",
    "its threshold (MONITOR_PARITY_THRESHOLD)",
)
ALERT_EQUALIZED_ODDS: Final = _fairness_alert(
    "ml.alert.fairness.equalized_odds",
    "TPR or FPR",
    "its threshold (MONITOR_EQUALIZED_ODDS_THRESHOLD)",
)

ALERT_FAIRNESS: Final[Mapping[str, Figure]] = MappingProxyType(
    {"demographic_parity": ALERT_DEMOGRAPHIC_PARITY, "equalized_odds": ALERT_EQUALIZED_ODDS}
)
"""Figure of ``alerts.fairness.<attribute>.<class>`` → figure."""

ALERTS: Final[Mapping[str, Figure]] = MappingProxyType(
    {
        "accuracy_cusum": ALERT_ACCURACY_CUSUM,
        "estimated_accuracy_cusum": ALERT_ESTIMATED_ACCURACY_CUSUM,
        "mae_cusum": ALERT_MAE_CUSUM,
    }
)
"""Key of a version's ``alerts`` → figure."""

_FIGURES = (
    *QUALITY.values(),
    *FAIRNESS_GROUP.values(),
    *FAIRNESS_DISPARITY.values(),
    *DRIFT.values(),
    *ESTIMATED.values(),
    *COMPARE.values(),
    *ROLLOUT.values(),
    *ALERTS.values(),
    *ALERT_FAIRNESS.values(),
)

GAUGES: Final[tuple[Gauge, ...]] = tuple(
    sorted(
        {g for figure in _FIGURES for g in figure.gauges}
        | {DRIFT_DRIFTED, *ESTIMATED_ERROR.values()},
        key=lambda g: g.name,
    )
)
"""Every window gauge, by name: the instruments ``WindowGauges`` registers."""
