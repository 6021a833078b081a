"""Runtime configuration from ``MONITOR_*`` environment variables, validated at start-up.

A bad value raises :class:`ConfigError` naming the variable and what is allowed,
so a misconfigured server never starts half-working.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_STORE_URL = "sqlite:///.monitor/store.db"
"""Embedded default: an SQLite file under ``./.monitor/`` shared by all workers of a host."""

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
DURATION_HELP = "a whole number followed by s, m, h, d or w (e.g. 90s, 5m, 1h, 30d)"


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the variable."""


def parse_duration(text: str, *, variable: str) -> float:
    """Seconds in a duration such as ``5m`` or ``30d``; raises naming ``variable``."""
    match = _DURATION.match(text)
    if match is None or int(match.group(1)) == 0:
        raise ConfigError(f"{variable}={text!r}: expected a positive duration, {DURATION_HELP}")
    return float(int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def _duration(env: Mapping[str, str], variable: str, default: float) -> float:
    raw = env.get(variable, "").strip()
    return parse_duration(raw, variable=variable) if raw else default


def _int(env: Mapping[str, str], variable: str, default: int, *, minimum: int) -> int:
    raw = env.get(variable, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise ConfigError(f"{variable}={raw!r}: expected a whole number >= {minimum}")
    return value


def _float(
    env: Mapping[str, str], variable: str, default: float, *, low: float, high: float
) -> float:
    raw = env.get(variable, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:
        raise ConfigError(f"{variable}={raw!r}: expected a number from {low} to {high}")
    return value


def _port(env: Mapping[str, str], variable: str, *, processes: int) -> int | None:
    """A first TCP port; ``processes`` consecutive ports from it must exist."""
    raw = env.get(variable, "").strip()
    if not raw:
        return None
    highest = 65536 - processes
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= highest:
        per_worker = f" (one port per worker, MONITOR_WORKERS={processes})" if processes > 1 else ""
        raise ConfigError(f"{variable}={raw!r}: expected a port from 1 to {highest}{per_worker}")
    return value


@dataclass(frozen=True)
class StoreURL:
    """A parsed ``MONITOR_STORE_URL``: ``sqlite:///relative/path`` or ``sqlite:////abs/path``.

    SQLite is the one store this version ships; a Redis URL gets a clear error.
    """

    path: Path

    @classmethod
    def parse(cls, text: str, *, variable: str = "MONITOR_STORE_URL") -> StoreURL:
        """Check a store URL; raise :class:`ConfigError` naming ``variable`` otherwise."""
        if text.startswith("sqlite:///") and len(text) > len("sqlite:///"):
            return cls(Path(text[len("sqlite:///") :]))
        if text.startswith(("redis://", "rediss://")):
            raise ConfigError(
                f"{variable}={text!r}: the redis store is not available in this version; "
                "expected sqlite:///<path>"
            )
        raise ConfigError(
            f"{variable}={text!r}: expected sqlite:///<path> (relative, or absolute with "
            "sqlite:////abs/path)"
        )

    def describe(self) -> str:
        """Where the store is, for logs: the absolute path of the database file."""
        return str(self.path.resolve())


@dataclass(frozen=True)
class Window:
    """A named look-back window such as ``5m``: metrics are summed over its buckets."""

    name: str
    seconds: float


@dataclass(frozen=True)
class MonitorConfig:
    """Everything the monitor reads from the environment, with its defaults.

    >>> MonitorConfig.from_env({}).windows[0].name
    '5m'
    """

    workers: int = 2
    trace_sample_rate: float = 1.0
    store_url: StoreURL = field(default_factory=lambda: StoreURL.parse(DEFAULT_STORE_URL))
    windows: tuple[Window, ...] = (
        Window("5m", 300.0),
        Window("1h", 3600.0),
        Window("24h", 86400.0),
    )
    feedback_token: str | None = None
    prediction_ttl: float = 30 * 86400.0
    max_stored_predictions: int = 5_000_000
    max_batch: int = 1000
    max_group_values: int = 50
    min_group_samples: int = 30
    psi_threshold: float = 0.2
    min_drift_samples: int = 100
    rollup_after: float = 7200.0
    bucket_seconds: int = 60
    prometheus_port: int | None = None
    """First port of the per-worker Prometheus scrape endpoints (worker i: port + i - 1)."""
    prometheus_host: str = "127.0.0.1"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> MonitorConfig:
        """Read ``MONITOR_*`` variables; raise :class:`ConfigError` on a bad value."""
        windows_raw = env.get("MONITOR_WINDOWS", "").strip()
        windows = cls.windows
        if windows_raw:
            names = [part.strip() for part in windows_raw.split(",")]
            windows = tuple(
                Window(name, parse_duration(name, variable="MONITOR_WINDOWS")) for name in names
            )
            if len(set(names)) != len(names):
                raise ConfigError(f"MONITOR_WINDOWS={windows_raw!r}: window names must be unique")
        bucket_seconds = _int(env, "MONITOR_BUCKET_SECONDS", 60, minimum=1)
        for window in windows:
            if window.seconds < bucket_seconds:
                raise ConfigError(
                    f"MONITOR_WINDOWS={windows_raw!r}: window {window.name} is shorter than "
                    f"MONITOR_BUCKET_SECONDS={bucket_seconds}"
                )
        ttl_raw = env.get("MONITOR_PREDICTION_TTL", "").strip()
        workers = _int(env, "MONITOR_WORKERS", 2, minimum=1)
        return cls(
            workers=workers,
            trace_sample_rate=_float(env, "MONITOR_TRACE_SAMPLE_RATE", 1.0, low=0.0, high=1.0),
            store_url=StoreURL.parse(env.get("MONITOR_STORE_URL", "").strip() or DEFAULT_STORE_URL),
            windows=windows,
            feedback_token=env.get("MONITOR_FEEDBACK_TOKEN", "").strip() or None,
            prediction_ttl=(
                parse_duration(ttl_raw, variable="MONITOR_PREDICTION_TTL")
                if ttl_raw
                else 30 * 86400.0
            ),
            max_stored_predictions=_int(
                env, "MONITOR_MAX_STORED_PREDICTIONS", 5_000_000, minimum=1
            ),
            max_batch=_int(env, "MONITOR_MAX_BATCH", 1000, minimum=1),
            max_group_values=_int(env, "MONITOR_MAX_GROUP_VALUES", 50, minimum=1),
            min_group_samples=_int(env, "MONITOR_MIN_GROUP_SAMPLES", 30, minimum=0),
            psi_threshold=_float(env, "MONITOR_PSI_THRESHOLD", 0.2, low=1e-6, high=100.0),
            min_drift_samples=_int(env, "MONITOR_MIN_DRIFT_SAMPLES", 100, minimum=0),
            rollup_after=_duration(env, "MONITOR_ROLLUP_AFTER", 7200.0),
            bucket_seconds=bucket_seconds,
            prometheus_port=_port(env, "MONITOR_PROMETHEUS_PORT", processes=workers),
            prometheus_host=env.get("MONITOR_PROMETHEUS_HOST", "").strip() or "127.0.0.1",
        )
