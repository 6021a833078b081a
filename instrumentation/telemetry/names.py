"""Every span, metric and attribute name of the library, each defined once.

Dashboards, alert rules and clients depend on these strings: change one and you
break them. Instrument and unit are given in each docstring; the window gauges
are in ``gauge_table.py``.
"""

from __future__ import annotations

from typing import Final

from opentelemetry.semconv.attributes import error_attributes
from opentelemetry.semconv.schemas import Schemas

from instrumentation.version import __version__

INSTRUMENTATION_SCOPE: Final = __name__.split(".")[0]
"""Name of the tracer and meter this library creates: its package name, ``instrumentation``."""

SCOPE_VERSION: Final = __version__
"""Version of the tracer and meter this library creates: the library's version."""

SCHEMA_URL: Final = Schemas.V1_26_0.value
"""Schema URL of the tracer and meter: the semantic conventions the standard names here follow
(``error.type``, ``service.*``; stable in 1.26). The ``ml.*`` names are this library's own."""

# --- spans -----------------------------------------------------------------

SPAN_PREDICT: Final = "ml.predict"
"""Span around one prediction request: model call and store write."""

SPAN_FEEDBACK: Final = "ml.feedback"
"""Span around one feedback request; links to each matched prediction's span."""

SPAN_PREDICT_BATCH: Final = "ml.predict.batch"
"""Span around one model call serving several requests (adaptive batching): the root of its
own trace, with a link to each served request's ``ml.predict`` span."""

# --- metrics ---------------------------------------------------------------

METRIC_PREDICTION_DURATION: Final = "ml.prediction.duration"
"""Histogram, ``s``: wall time of one prediction request, errors included."""

METRIC_PREDICTIONS: Final = "ml.predictions"
"""Counter, ``{prediction}``: rows predicted (one request may carry many)."""

METRIC_PREDICTION_ERRORS: Final = "ml.prediction.errors"
"""Counter, ``{request}``: failed prediction requests, attribute ``error.type``."""

METRIC_PREDICTIONS_EVICTED: Final = "ml.predictions.evicted"
"""Counter, ``{prediction}``: stored predictions dropped by TTL or row cap before a label."""

METRIC_PREDICTIONS_SPOOLED: Final = "ml.predictions.spooled"
"""Counter, ``{prediction}``: predictions spooled locally (the store could not take them)."""

METRIC_PREDICTIONS_REPLAYED: Final = "ml.predictions.replayed"
"""Counter, ``{prediction}``: spooled predictions written to the store since."""

METRIC_PREDICTIONS_UNRECORDED: Final = "ml.predictions.unrecorded"
"""Counter, ``{prediction}``: served but not recorded, attribute ``ml.unrecorded.reason``."""

METRIC_FEEDBACK: Final = "ml.feedback"
"""Counter, ``{label}``: feedback items by ``ml.feedback.status``."""

METRIC_LABEL_DELAY: Final = "ml.label.delay"
"""Histogram, ``s``: time from prediction to its matched label."""

METRIC_CONFUSION: Final = "ml.confusion"
"""Counter, ``{label}``: matched labels by ``ml.label.actual`` and ``ml.label.predicted``."""

# The window gauges (ml.quality.*, ml.fairness.*, ml.drift.*, ml.estimated.*) are a typed
# table of their own, with unit and attributes: see instrumentation/telemetry/gauge_table.py.

# --- attributes ------------------------------------------------------------

ATTR_MODEL_NAME: Final = "ml.model.name"
"""On every span and metric point: the model's name in the model store."""

ATTR_MODEL_VERSION: Final = "ml.model.version"
"""On every span and metric point: the model's version (store tag version)."""

ATTR_ERROR_TYPE: Final = error_attributes.ERROR_TYPE
"""Semconv ``error.type``: the exception's qualified class name."""

ATTR_PREDICTION_COUNT: Final = "ml.prediction.count"
"""Span attribute: rows in the request; on a ``ml.predict.batch`` link, that request's rows in
the batch."""

ATTR_PREDICTION_ID: Final = "ml.prediction.id"
"""Span-link attribute: the prediction id a feedback span's link points to."""

ATTR_PREDICTION_IDS: Final = "ml.prediction.ids"
"""Span attribute (string array, capped): prediction ids of the request."""

ATTR_BATCH_ROWS: Final = "ml.batch.rows"
"""Span attribute of ``ml.predict.batch``: rows in the model call."""

ATTR_BATCH_REQUESTS: Final = "ml.batch.requests"
"""Span attribute of ``ml.predict.batch``: requests whose rows the model call served."""

ATTR_BATCH_LINKS_DROPPED: Final = "ml.batch.links_dropped"
"""Span attribute of ``ml.predict.batch``: served requests beyond the link cap (not linked)."""

ATTR_FEEDBACK_STATUS: Final = "ml.feedback.status"
"""Metric attribute of ``ml.feedback``: matched, duplicate, conflict, unknown, invalid, expired."""

ATTR_FEEDBACK_COUNT: Final = "ml.feedback.count"
"""Span attribute: items in the feedback request."""

ATTR_FEEDBACK_MATCHED_IDS: Final = "ml.feedback.matched_ids"
"""Span attribute (string array, capped): ids of predictions matched by this request."""

ATTR_FEEDBACK_LINKS_DROPPED: Final = "ml.feedback.links_dropped"
"""Span attribute: matched predictions beyond the link cap (not linked)."""

ATTR_UNRECORDED_REASON: Final = "ml.unrecorded.reason"
"""Metric attribute of ``ml.predictions.unrecorded``: ``spool_full``, ``no_spool``, ``id_taken``."""

ATTR_COMPARE_BASELINE: Final = "ml.compare.baseline_version"
"""Gauge attribute of ``ml.compare.*``: the version the serving one (``ml.model.version``) is
compared with; the figure is serving minus baseline."""

ATTR_LABEL_ACTUAL: Final = "ml.label.actual"
"""Metric attribute of ``ml.confusion``: the true class."""

ATTR_LABEL_PREDICTED: Final = "ml.label.predicted"
"""Metric attribute of ``ml.confusion``: the predicted class."""

ATTR_WINDOW: Final = "ml.window"
"""Gauge attribute: the window a figure covers, as configured (``5m``, ``1h``…).

The span it really covers is that window's ``from``/``to`` in ``GET /monitor``.
"""

ATTR_CLASS: Final = "ml.class"
"""Gauge attribute: the class a per-class figure is about."""

ATTR_AVERAGE: Final = "ml.average"
"""Gauge attribute: ``macro``, ``micro`` or ``weighted`` for averaged figures."""

ATTR_SENSITIVE_ATTRIBUTE: Final = "ml.sensitive_attribute"
"""Gauge attribute: the sensitive attribute a fairness figure slices by."""

ATTR_GROUP: Final = "ml.group"
"""Gauge attribute: the (capped) group value of a per-group figure."""

ATTR_FAIRNESS_METHOD: Final = "ml.fairness.method"
"""Gauge attribute: ``between_groups`` or ``to_overall``."""

ATTR_FAIRNESS_AGG: Final = "ml.fairness.agg"
"""Gauge attribute of equalized-odds figures: ``worst_case`` or ``mean``."""

ATTR_FEATURE: Final = "ml.feature"
"""Gauge attribute: the input feature (or ``__prediction__``) a drift figure is about."""
