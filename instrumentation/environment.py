"""Every environment variable the library reads, each declared once: the typed table.

An entry gives the variable's name, the type of value it takes, its default (the
text you would set to get the same behaviour, parsed by the same reader; ``None``:
unset) and what it means. ``config.py`` (``MONITOR_*``) and
``telemetry/providers.py`` (``OTEL_*``) read variables only through these entries;
the service adds its own in ``service/settings.py`` (``SERVICE_VARIABLES``). The
docs' configuration page is generated from both, and checked by
``tests/unit/test_environment.py``, which also fails for a variable read that has no
entry here and for an entry nothing reads.

A pure data table: long by nature, one concept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Variable:
    """One environment variable: name, type of value, default, meaning.

    ``shown`` is the docs' default column where the default alone does not say
    it (a derived or unset default, a unit); ``read_by_sdk`` marks a variable the
    OpenTelemetry SDK reads itself (documented here, never read by our readers).
    """

    name: str
    type: str
    default: str | None
    meaning: str
    shown: str | None = None
    read_by_sdk: bool = False

    def raw(self, env: Mapping[str, str]) -> str:
        """The value in ``env``, stripped; blank or unset means the default (``""`` if none)."""
        return env.get(self.name, "").strip() or (self.default or "")

    @property
    def text(self) -> str:
        """The default's text (a variable without a default has none: ``""``)."""
        return self.default or ""


# --- OpenTelemetry's standard variables --------------------------------------------------------

OTEL_EXPORTER_OTLP_ENDPOINT: Final = Variable(
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "URL",
    None,
    "OTLP collector / Jaeger / Phoenix",
    shown="unset: nothing exported, nothing fails",
)
OTEL_EXPORTER_OTLP_PROTOCOL: Final = Variable(
    "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc | http/protobuf", "http/protobuf", "or `grpc`"
)
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: Final = Variable(
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "URL", None, "per-signal override", shown="derived"
)
OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: Final = Variable(
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "URL", None, "per-signal override", shown="derived"
)
OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: Final = Variable(
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "grpc | http/protobuf",
    None,
    "per-signal override",
    shown="`OTEL_EXPORTER_OTLP_PROTOCOL`",
)
OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: Final = Variable(
    "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    "grpc | http/protobuf",
    None,
    "per-signal override",
    shown="`OTEL_EXPORTER_OTLP_PROTOCOL`",
)
OTEL_RESOURCE_ATTRIBUTES: Final = Variable(
    "OTEL_RESOURCE_ATTRIBUTES",
    "key=value list",
    None,
    "extra resource attributes",
    shown="–",
    read_by_sdk=True,
)
OTEL_METRIC_EXPORT_INTERVAL: Final = Variable(
    "OTEL_METRIC_EXPORT_INTERVAL",
    "milliseconds > 0",
    "60000",
    "metric export period",
    shown="`60000` (ms)",
)

OTLP_VARIABLES: Final[tuple[Variable, ...]] = (
    OTEL_EXPORTER_OTLP_ENDPOINT,
    OTEL_EXPORTER_OTLP_PROTOCOL,
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
    OTEL_EXPORTER_OTLP_METRICS_ENDPOINT,
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
    OTEL_EXPORTER_OTLP_METRICS_PROTOCOL,
    OTEL_RESOURCE_ATTRIBUTES,
    OTEL_METRIC_EXPORT_INTERVAL,
)
"""What ``OTLPSettings.from_env`` reads (and the resource attributes the SDK reads)."""

# --- the monitor's own ---------------------------------------------------------------------------

MONITOR_WORKERS: Final = Variable(
    "MONITOR_WORKERS", "whole number >= 1", "2", "BentoML worker processes"
)
MONITOR_TRACE_SAMPLE_RATE: Final = Variable(
    "MONITOR_TRACE_SAMPLE_RATE",
    "number 0..1",
    "1.0",
    "share of traces exported (0..1); metrics and stored predictions are always 100%",
)
MONITOR_STORE_URL: Final = Variable(
    "MONITOR_STORE_URL",
    "store URL",
    "sqlite:///.monitor/store.db",
    "where predictions wait for labels: `sqlite:///rel/path`, `sqlite:////abs/path`, or "
    "`postgresql://user:pass@host:port/db?sslmode=…` (`postgres://` too; libpq syntax; "
    "`&schema=name` picks the schema, default `monitor`; the password never appears in logs "
    "or errors)",
)
MONITOR_SPOOL_DIR: Final = Variable(
    "MONITOR_SPOOL_DIR",
    "directory",
    None,
    "local directory where predictions wait while the store cannot take them (one file per "
    "worker; a dead worker's file is replayed by another)",
    shown="beside an SQLite file (`<store dir>/spool`); `.monitor/spool` for PostgreSQL",
)
MONITOR_SPOOL_MAX_BYTES: Final = Variable(
    "MONITOR_SPOOL_MAX_BYTES",
    "whole number >= 0",
    "268435456",
    "most the spool may hold on this host; past it a prediction is served with "
    "`recorded: false` and counted in `ml.predictions.unrecorded`",
    shown="`268435456` (256 MiB)",
)
MONITOR_WINDOWS: Final = Variable(
    "MONITOR_WINDOWS",
    "durations, comma-separated",
    "5m,1h,24h",
    "comma list of durations (`s`, `m`, `h`, `d`, `w`)",
)
MONITOR_BUCKET_SECONDS: Final = Variable(
    "MONITOR_BUCKET_SECONDS", "whole number >= 1", "60", "aggregate bucket width"
)
MONITOR_ROLLUP_AFTER: Final = Variable(
    "MONITOR_ROLLUP_AFTER",
    "duration",
    "2h",
    "buckets older than this are merged into hour buckets, so a `24h` window sums ~144 "
    "buckets instead of 1,440 (windows longer than this start at their first whole hour, "
    "reported as `from` in `GET /monitor`); buckets older than the longest window are deleted",
)
MONITOR_PREDICTION_TTL: Final = Variable(
    "MONITOR_PREDICTION_TTL", "duration", "30d", "how long a prediction waits for its label"
)
MONITOR_MAX_STORED_PREDICTIONS: Final = Variable(
    "MONITOR_MAX_STORED_PREDICTIONS",
    "whole number >= 1",
    "5000000",
    "row cap; the oldest go first (counted in `ml.predictions.evicted`)",
)
MONITOR_MAX_BATCH: Final = Variable(
    "MONITOR_MAX_BATCH", "whole number >= 1", "1000", "most instances / labels per request"
)
MONITOR_FEEDBACK_TOKEN: Final = Variable(
    "MONITOR_FEEDBACK_TOKEN",
    "secret",
    None,
    "require `Authorization: Bearer <token>` on `/feedback`",
    shown="unset",
)
MONITOR_MAX_GROUP_VALUES: Final = Variable(
    "MONITOR_MAX_GROUP_VALUES",
    "whole number >= 1",
    "50",
    "distinct values kept per sensitive attribute; the rest go to `__other__`",
)
MONITOR_MIN_GROUP_SAMPLES: Final = Variable(
    "MONITOR_MIN_GROUP_SAMPLES",
    "whole number >= 0",
    "30",
    "below this a group reports `insufficient_data`",
)
MONITOR_PSI_THRESHOLD: Final = Variable(
    "MONITOR_PSI_THRESHOLD",
    "number 1e-06..100",
    "0.2",
    "PSI at or above which a feature is `drifted`",
)
MONITOR_ROLLOUT_ALPHA: Final = Variable(
    "MONITOR_ROLLOUT_ALPHA",
    "number 0.0001..0.5",
    "0.05",
    "chance that a rollout comparison's anytime interval ever misses the true difference",
)
MONITOR_ACCURACY_THRESHOLD: Final = Variable(
    "MONITOR_ACCURACY_THRESHOLD",
    "number 0.01..0.99",
    "0.8",
    "accuracy the `ml.alert.accuracy.cusum` statistic holds a model to",
)
MONITOR_ACCURACY_WORSE: Final = Variable(
    "MONITOR_ACCURACY_WORSE",
    "number 0.01..0.99",
    "0.75",
    "the worse accuracy that CUSUM is tuned to detect (below the threshold)",
)
MONITOR_MAE_THRESHOLD: Final = Variable(
    "MONITOR_MAE_THRESHOLD",
    "number > 0",
    None,
    "regression: the MAE the `ml.alert.mae.cusum` statistic holds a model to",
    shown="unset: no MAE statistic",
)
MONITOR_MAE_WORSE: Final = Variable(
    "MONITOR_MAE_WORSE",
    "number > threshold",
    None,
    "the worse (higher) MAE that CUSUM is tuned to detect",
    shown="1.25 × `MONITOR_MAE_THRESHOLD`",
)
MONITOR_PARITY_THRESHOLD: Final = Variable(
    "MONITOR_PARITY_THRESHOLD",
    "number 0.001..1",
    "0.1",
    "selection-rate gap between two groups that `ml.alert.fairness.demographic_parity` "
    "judges (anytime-valid, every label of the version)",
)
MONITOR_EQUALIZED_ODDS_THRESHOLD: Final = Variable(
    "MONITOR_EQUALIZED_ODDS_THRESHOLD",
    "number 0.001..1",
    "0.2",
    "TPR or FPR gap between two groups that `ml.alert.fairness.equalized_odds` judges",
)
MONITOR_CUSUM_H: Final = Variable(
    "MONITOR_CUSUM_H",
    "number > 0",
    "9.5",
    "CUSUM threshold h: the `ml.alert.*.cusum` gauges are S/h, alarming above 1 "
    "(run lengths per label rate in the docs' *Alerts you can trust*)",
)
MONITOR_ALERT_LOOKBACK: Final = Variable(
    "MONITOR_ALERT_LOOKBACK",
    "duration",
    "24h",
    "buckets the CUSUM statistics are computed over (a shorter look-back only alarms less)",
)
MONITOR_MIN_DRIFT_SAMPLES: Final = Variable(
    "MONITOR_MIN_DRIFT_SAMPLES",
    "whole number >= 0",
    "100",
    "below this many predictions in a window `drifted` is `null` with `insufficient_data` "
    "(PSI of a handful of rows is noise)",
)
MONITOR_PROMETHEUS_PORT: Final = Variable(
    "MONITOR_PROMETHEUS_PORT",
    "TCP port",
    None,
    "first port of the per-worker Prometheus endpoints: worker *i* serves `GET /metrics` on "
    "this port + *i* − 1 (see below)",
    shown="unset: no scrape endpoint",
)
MONITOR_PROMETHEUS_HOST: Final = Variable(
    "MONITOR_PROMETHEUS_HOST",
    "address",
    "127.0.0.1",
    "address those endpoints listen on (`0.0.0.0` to be scraped from elsewhere; they have no "
    "authentication)",
)

MONITOR_VARIABLES: Final[tuple[Variable, ...]] = (
    MONITOR_WORKERS,
    MONITOR_TRACE_SAMPLE_RATE,
    MONITOR_STORE_URL,
    MONITOR_SPOOL_DIR,
    MONITOR_SPOOL_MAX_BYTES,
    MONITOR_WINDOWS,
    MONITOR_BUCKET_SECONDS,
    MONITOR_ROLLUP_AFTER,
    MONITOR_PREDICTION_TTL,
    MONITOR_MAX_STORED_PREDICTIONS,
    MONITOR_MAX_BATCH,
    MONITOR_FEEDBACK_TOKEN,
    MONITOR_MAX_GROUP_VALUES,
    MONITOR_MIN_GROUP_SAMPLES,
    MONITOR_PSI_THRESHOLD,
    MONITOR_MIN_DRIFT_SAMPLES,
    MONITOR_ROLLOUT_ALPHA,
    MONITOR_ACCURACY_THRESHOLD,
    MONITOR_ACCURACY_WORSE,
    MONITOR_MAE_THRESHOLD,
    MONITOR_MAE_WORSE,
    MONITOR_PARITY_THRESHOLD,
    MONITOR_EQUALIZED_ODDS_THRESHOLD,
    MONITOR_CUSUM_H,
    MONITOR_ALERT_LOOKBACK,
    MONITOR_PROMETHEUS_PORT,
    MONITOR_PROMETHEUS_HOST,
)
"""What ``MonitorConfig.from_env`` reads."""

LIBRARY_VARIABLES: Final[tuple[Variable, ...]] = (*OTLP_VARIABLES, *MONITOR_VARIABLES)
"""Every variable the library reads (or documents as read by the OpenTelemetry SDK)."""
