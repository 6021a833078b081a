"""Runtime configuration from ``MONITOR_*`` environment variables, validated at start-up.

Each variable, with its default, is declared once in ``environment.py``; this
module reads them through those entries. A bad value raises :class:`ConfigError`
naming the variable and what is allowed, so a misconfigured server never starts
half-working.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit

from instrumentation.environment import (
    MONITOR_ACCURACY_THRESHOLD,
    MONITOR_ACCURACY_WORSE,
    MONITOR_ALERT_LOOKBACK,
    MONITOR_BUCKET_SECONDS,
    MONITOR_CUSUM_H,
    MONITOR_EQUALIZED_ODDS_THRESHOLD,
    MONITOR_FEEDBACK_TOKEN,
    MONITOR_MAE_THRESHOLD,
    MONITOR_MAE_WORSE,
    MONITOR_MAX_BATCH,
    MONITOR_MAX_GROUP_VALUES,
    MONITOR_MAX_STORED_PREDICTIONS,
    MONITOR_MIN_DRIFT_SAMPLES,
    MONITOR_MIN_GROUP_SAMPLES,
    MONITOR_PARITY_THRESHOLD,
    MONITOR_PREDICTION_TTL,
    MONITOR_PROMETHEUS_HOST,
    MONITOR_PROMETHEUS_PORT,
    MONITOR_PSI_THRESHOLD,
    MONITOR_ROLLOUT_ALPHA,
    MONITOR_ROLLUP_AFTER,
    MONITOR_SPOOL_DIR,
    MONITOR_SPOOL_MAX_BYTES,
    MONITOR_STORE_URL,
    MONITOR_TRACE_SAMPLE_RATE,
    MONITOR_WINDOWS,
    MONITOR_WORKERS,
    Variable,
)
from instrumentation.errors import MonitorError

DEFAULT_SPOOL_DIR = ".monitor/spool"
"""Where predictions wait when a PostgreSQL store cannot take them (local disk, a file per
process); beside the database file for SQLite (``<store dir>/spool``)."""

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
DURATION_HELP = "a whole number followed by s, m, h, d or w (e.g. 90s, 5m, 1h, 30d)"


class ConfigError(MonitorError, ValueError):
    """A configuration value is invalid; the message names the variable."""


def parse_duration(text: str, *, variable: str) -> float:
    """Seconds in a duration such as ``5m`` or ``30d``; raises naming ``variable``."""
    match = _DURATION.match(text)
    if match is None or int(match.group(1)) == 0:
        raise ConfigError(f"{variable}={text!r}: expected a positive duration, {DURATION_HELP}")
    return float(int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


_UNSET: Final[Mapping[str, str]] = {}
"""The empty environment: every variable at its default (the dataclass defaults below)."""


def _duration(variable: Variable, env: Mapping[str, str] = _UNSET) -> float:
    return parse_duration(variable.raw(env), variable=variable.name)


def _int(variable: Variable, env: Mapping[str, str] = _UNSET, *, minimum: int = 0) -> int:
    raw = variable.raw(env)
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise ConfigError(f"{variable.name}={raw!r}: expected a whole number >= {minimum}")
    return value


def _float(
    variable: Variable,
    env: Mapping[str, str] = _UNSET,
    *,
    low: float = -math.inf,
    high: float = math.inf,
) -> float:
    raw = variable.raw(env)
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:
        raise ConfigError(f"{variable.name}={raw!r}: expected a number from {low} to {high}")
    return value


def _windows(env: Mapping[str, str] = _UNSET) -> tuple[Window, ...]:
    raw = MONITOR_WINDOWS.raw(env)
    names = [part.strip() for part in raw.split(",")]
    windows = tuple(
        Window(name, parse_duration(name, variable=MONITOR_WINDOWS.name)) for name in names
    )
    if len(set(names)) != len(names):
        raise ConfigError(f"{MONITOR_WINDOWS.name}={raw!r}: window names must be unique")
    return windows


def _port(env: Mapping[str, str], variable: Variable, *, processes: int) -> int | None:
    """A first TCP port; ``processes`` consecutive ports from it must exist."""
    raw = variable.raw(env)
    if not raw:
        return None
    highest = 65536 - processes
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= highest:
        per_worker = f" (one port per worker, {MONITOR_WORKERS.name}={processes})"
        per_worker = per_worker if processes > 1 else ""
        raise ConfigError(
            f"{variable.name}={raw!r}: expected a port from 1 to {highest}{per_worker}"
        )
    return value


STORE_URL_HELP: Final = (
    "expected sqlite:///<path> (relative, or absolute with sqlite:////abs/path) or "
    "postgresql://user:password@host:port/database[?sslmode=...&schema=...] (postgres:// too)"
)
"""What ``MONITOR_STORE_URL`` accepts, quoted by every store-URL error."""

DEFAULT_POSTGRES_SCHEMA: Final = "monitor"
"""PostgreSQL schema holding the store's tables unless the URL says ``schema=...``."""

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def _redacted(text: str) -> str:
    """``text`` with any password (``user:password@`` or ``password=``) replaced by ``***``."""
    text = re.sub(r"^([a-z]+://[^:/?#@]*):[^@/?#]*@", r"\1:***@", text)
    return re.sub(r"([?&]password=)[^&#]*", r"\1***", text)


@dataclass(frozen=True)
class StoreURL:
    """A parsed ``MONITOR_STORE_URL``: an SQLite file or a PostgreSQL database.

    ``sqlite:///relative/path`` or ``sqlite:////abs/path`` sets :attr:`path`;
    ``postgresql://user:password@host:port/database?sslmode=require`` (libpq URL
    syntax, ``postgres://`` too) sets :attr:`conninfo`, the URL handed to libpq with
    the library's own ``schema=`` parameter taken out into :attr:`schema`. The
    password never appears in :meth:`describe`, in ``repr`` or in an error.

    >>> StoreURL.parse("postgresql://app:secret@db:5432/ml?schema=fraud").describe()
    'postgresql://app:***@db:5432/ml (schema fraud)'
    """

    path: Path | None = None
    conninfo: str | None = field(default=None, repr=False)
    schema: str | None = None

    @property
    def is_postgres(self) -> bool:
        """True when the URL names a PostgreSQL database."""
        return self.conninfo is not None

    @classmethod
    def parse(cls, text: str, *, variable: str = MONITOR_STORE_URL.name) -> StoreURL:
        """Check a store URL; raise :class:`ConfigError` naming ``variable`` otherwise."""
        shown = _redacted(text)
        if text.startswith("sqlite:///") and len(text) > len("sqlite:///"):
            return cls(Path(text[len("sqlite:///") :]))
        if text.startswith(_POSTGRES_SCHEMES):
            return cls._parse_postgres(text, variable=variable, shown=shown)
        if text.startswith(("redis://", "rediss://")):
            raise ConfigError(
                f"{variable}={shown!r}: the redis store is not available in this version; "
                f"{STORE_URL_HELP}"
            )
        raise ConfigError(f"{variable}={shown!r}: {STORE_URL_HELP}")

    @classmethod
    def _parse_postgres(cls, text: str, *, variable: str, shown: str) -> StoreURL:
        parts = urlsplit(text)
        try:
            parts.port  # noqa: B018 -- raises on a port that is not a number
        except ValueError:
            raise ConfigError(
                f"{variable}={shown!r}: the port is not a number; {STORE_URL_HELP}"
            ) from None
        database = parts.path.lstrip("/")
        if not database or "/" in database:
            raise ConfigError(f"{variable}={shown!r}: no database name; {STORE_URL_HELP}")
        query = parse_qsl(parts.query, keep_blank_values=True)
        schema = DEFAULT_POSTGRES_SCHEMA
        for name, value in query:
            if name == "schema":
                schema = value
        if not _SCHEMA_NAME.match(schema):
            raise ConfigError(
                f"{variable}={shown!r}: schema {schema!r} must be lower-case letters, digits "
                "and _ (at most 63, not starting with a digit)"
            )
        libpq_query = urlencode([(n, v) for n, v in query if n != "schema"])
        # Rebuilt by hand: urlunsplit drops the empty host of postgresql:///db (a local socket).
        conninfo = f"{parts.scheme}://{parts.netloc}{parts.path}"
        conninfo += f"?{libpq_query}" if libpq_query else ""
        return cls(conninfo=conninfo, schema=schema)

    def describe(self) -> str:
        """Where the store is, for logs: the file's absolute path, or the URL without password."""
        if self.conninfo is not None:
            parts = urlsplit(_redacted(self.conninfo))  # the query may hold sslkey paths: left out
            return f"{parts.scheme}://{parts.netloc}{parts.path} (schema {self.schema})"
        assert self.path is not None  # one of the two is always set by parse
        return str(self.path.resolve())


@dataclass(frozen=True)
class Window:
    """A named look-back window such as ``5m``: metrics are summed over its buckets."""

    name: str
    seconds: float


ROLLUP_SECONDS: Final = 3600
"""Width of the buckets aggregates older than ``rollup_after`` are merged into."""


@dataclass(frozen=True)
class MonitorConfig:
    """Everything the monitor reads from the environment; each default is its variable's.

    >>> MonitorConfig.from_env({}).windows[0].name
    '5m'
    """

    workers: int = _int(MONITOR_WORKERS)
    trace_sample_rate: float = _float(MONITOR_TRACE_SAMPLE_RATE)
    store_url: StoreURL = field(default_factory=lambda: StoreURL.parse(MONITOR_STORE_URL.text))
    windows: tuple[Window, ...] = _windows()
    feedback_token: str | None = None
    prediction_ttl: float = _duration(MONITOR_PREDICTION_TTL)
    max_stored_predictions: int = _int(MONITOR_MAX_STORED_PREDICTIONS)
    max_batch: int = _int(MONITOR_MAX_BATCH)
    max_group_values: int = _int(MONITOR_MAX_GROUP_VALUES)
    min_group_samples: int = _int(MONITOR_MIN_GROUP_SAMPLES)
    psi_threshold: float = _float(MONITOR_PSI_THRESHOLD)
    min_drift_samples: int = _int(MONITOR_MIN_DRIFT_SAMPLES)
    rollout_alpha: float = _float(MONITOR_ROLLOUT_ALPHA)
    accuracy_threshold: float = _float(MONITOR_ACCURACY_THRESHOLD)
    accuracy_worse: float = _float(MONITOR_ACCURACY_WORSE)
    mae_threshold: float | None = None
    """Regression: the MAE the MAE CUSUM holds a model to (None: no MAE statistic)."""
    mae_worse: float | None = None
    parity_threshold: float = _float(MONITOR_PARITY_THRESHOLD)
    equalized_odds_threshold: float = _float(MONITOR_EQUALIZED_ODDS_THRESHOLD)
    cusum_h: float = _float(MONITOR_CUSUM_H)
    alert_lookback: float = _duration(MONITOR_ALERT_LOOKBACK)
    rollup_after: float = _duration(MONITOR_ROLLUP_AFTER)
    spool_dir: Path = Path(DEFAULT_SPOOL_DIR)
    spool_max_bytes: int = _int(MONITOR_SPOOL_MAX_BYTES)
    """Most the spool may hold on this host (~500k one-row predictions); past it: unrecorded."""
    bucket_seconds: int = _int(MONITOR_BUCKET_SECONDS)
    prometheus_port: int | None = None
    """First port of the per-worker Prometheus scrape endpoints (worker i: port + i - 1)."""
    prometheus_host: str = MONITOR_PROMETHEUS_HOST.text

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> MonitorConfig:
        """Read ``MONITOR_*`` variables; raise :class:`ConfigError` on a bad value."""
        windows = _windows(env)
        bucket_seconds = _int(MONITOR_BUCKET_SECONDS, env, minimum=1)
        for window in windows:
            if window.seconds < bucket_seconds:
                raise ConfigError(
                    f"{MONITOR_WINDOWS.name}={MONITOR_WINDOWS.raw(env)!r}: window {window.name} "
                    f"is shorter than {MONITOR_BUCKET_SECONDS.name}={bucket_seconds}"
                )
        store_url = StoreURL.parse(MONITOR_STORE_URL.raw(env))
        workers = _int(MONITOR_WORKERS, env, minimum=1)
        return cls(
            workers=workers,
            trace_sample_rate=_float(MONITOR_TRACE_SAMPLE_RATE, env, low=0.0, high=1.0),
            store_url=store_url,
            windows=windows,
            feedback_token=MONITOR_FEEDBACK_TOKEN.raw(env) or None,
            prediction_ttl=_duration(MONITOR_PREDICTION_TTL, env),
            max_stored_predictions=_int(MONITOR_MAX_STORED_PREDICTIONS, env, minimum=1),
            max_batch=_int(MONITOR_MAX_BATCH, env, minimum=1),
            max_group_values=_int(MONITOR_MAX_GROUP_VALUES, env, minimum=1),
            min_group_samples=_int(MONITOR_MIN_GROUP_SAMPLES, env, minimum=0),
            psi_threshold=_float(MONITOR_PSI_THRESHOLD, env, low=1e-6, high=100.0),
            min_drift_samples=_int(MONITOR_MIN_DRIFT_SAMPLES, env, minimum=0),
            rollout_alpha=_float(MONITOR_ROLLOUT_ALPHA, env, low=1e-4, high=0.5),
            **_accuracy_alert(env),
            mae_threshold=_mae_alert(env)[0],
            mae_worse=_mae_alert(env)[1],
            parity_threshold=_float(MONITOR_PARITY_THRESHOLD, env, low=1e-3, high=1.0),
            equalized_odds_threshold=_float(
                MONITOR_EQUALIZED_ODDS_THRESHOLD, env, low=1e-3, high=1.0
            ),
            cusum_h=_float(MONITOR_CUSUM_H, env, low=1e-3, high=1e3),
            alert_lookback=_duration(MONITOR_ALERT_LOOKBACK, env),
            rollup_after=_duration(MONITOR_ROLLUP_AFTER, env),
            spool_dir=_spool_dir(env, store_url),
            spool_max_bytes=_int(MONITOR_SPOOL_MAX_BYTES, env, minimum=0),
            bucket_seconds=bucket_seconds,
            prometheus_port=_port(env, MONITOR_PROMETHEUS_PORT, processes=workers),
            prometheus_host=MONITOR_PROMETHEUS_HOST.raw(env),
        )


def _accuracy_alert(env: Mapping[str, str]) -> dict[str, float]:
    """The accuracy CUSUM's threshold and worse value (worse must be below the threshold)."""
    threshold = _float(MONITOR_ACCURACY_THRESHOLD, env, low=0.01, high=0.99)
    worse = _float(MONITOR_ACCURACY_WORSE, env, low=0.01, high=0.99)
    if not worse < threshold:
        raise ConfigError(
            f"{MONITOR_ACCURACY_WORSE.name}={worse!r}: expected below "
            f"{MONITOR_ACCURACY_THRESHOLD.name}={threshold!r}"
        )
    return {"accuracy_threshold": threshold, "accuracy_worse": worse}


def _mae_alert(env: Mapping[str, str]) -> tuple[float | None, float | None]:
    """The MAE CUSUM's threshold and worse value (1.25 × the threshold unless set)."""
    worse_set = bool(MONITOR_MAE_WORSE.raw(env))
    if not MONITOR_MAE_THRESHOLD.raw(env):
        if worse_set:
            raise ConfigError(f"{MONITOR_MAE_WORSE.name} needs {MONITOR_MAE_THRESHOLD.name}")
        return None, None
    threshold = _float(MONITOR_MAE_THRESHOLD, env, low=1e-12)
    if not worse_set:
        return threshold, 1.25 * threshold
    return threshold, _float(MONITOR_MAE_WORSE, env, low=threshold * (1 + 1e-9))


def _spool_dir(env: Mapping[str, str], store_url: StoreURL) -> Path:
    """``MONITOR_SPOOL_DIR``, else beside an SQLite file, else :data:`DEFAULT_SPOOL_DIR`.

    Beside the file, two servers with their own stores never replay into each other's.
    """
    raw = MONITOR_SPOOL_DIR.raw(env)
    if raw:
        return Path(raw)
    if store_url.path is not None:
        return store_url.path.parent / "spool"
    return Path(DEFAULT_SPOOL_DIR)
