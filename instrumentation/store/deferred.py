"""A store opened in the background: start-up and requests never wait for it.

A PostgreSQL server that is down when a worker starts, or an SQLite file on a
read-only or missing mount, would otherwise fail the worker's start-up, and with
it every prediction. :class:`DeferredStore` opens the real store on a background
thread, retrying every ``retry_seconds``; until it is open, every call raises
:class:`~instrumentation.errors.StoreUnavailable` at once, which the monitor
handles like any outage (spool, 503 for labels).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from instrumentation.store.protocol import (
    Increments,
    Label,
    LabelAggregator,
    LabelOutcome,
    PredictionRecord,
    PredictionStore,
    StoreUnavailable,
    VersionInfo,
)

logger = logging.getLogger(__name__)

NOT_OPEN = "the store is not open yet ({reason})"


class DeferredStore:
    """Implements the store protocol over a store that ``opener`` makes, once it can.

    Args:
        opener: builds the real store; raising means "not yet" and is retried.
        describe: where the store is, for log lines (never a password).
        retry_seconds: pause between attempts to open it.
    """

    def __init__(
        self,
        opener: Callable[[], PredictionStore],
        *,
        describe: str,
        retry_seconds: float = 1.0,
    ) -> None:
        self._opener = opener
        self._describe = describe
        self._retry_seconds = retry_seconds
        self._inner: PredictionStore | None = None
        self._reason = "opening"
        self._closed = threading.Event()
        self._opened = threading.Event()
        self._thread = threading.Thread(target=self._open_loop, name="store-open", daemon=True)
        self._thread.start()

    def wait_open(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds for the store to open; whether it is."""
        return self._opened.wait(timeout)

    def _open_loop(self) -> None:
        attempt = 0
        while not self._closed.is_set():
            attempt += 1
            try:
                store = self._opener()
            except Exception as exc:
                self._reason = f"{type(exc).__name__}: {exc}"
                if attempt == 1 or attempt % 60 == 0:
                    logger.error(
                        "prediction store %s cannot be opened (attempt %d): %s; predictions "
                        "are spooled or counted until it can",
                        self._describe,
                        attempt,
                        self._reason,
                    )
                self._closed.wait(self._retry_seconds)
                continue
            if self._closed.is_set():
                store.close()
                return
            self._inner = store
            self._opened.set()
            if attempt > 1:
                logger.info("prediction store %s opened after %d attempts", self._describe, attempt)
            return

    def _store(self) -> PredictionStore:
        inner = self._inner
        if inner is None:
            raise StoreUnavailable(NOT_OPEN.format(reason=self._reason))
        return inner

    def add_predictions(
        self,
        model: str,
        records: Sequence[PredictionRecord],
        increments: Increments,
        *,
        max_group_values: int,
    ) -> list[PredictionRecord]:
        """See :class:`~instrumentation.store.protocol.PredictionStore`."""
        return self._store().add_predictions(
            model, records, increments, max_group_values=max_group_values
        )

    def apply_labels(
        self,
        model: str,
        labels: Sequence[tuple[str, Label | None]],
        *,
        now: float,
        ttl: float,
        aggregate: LabelAggregator,
    ) -> list[LabelOutcome]:
        """See :class:`~instrumentation.store.protocol.PredictionStore`."""
        return self._store().apply_labels(model, labels, now=now, ttl=ttl, aggregate=aggregate)

    def get_predictions(self, model: str, ids: Sequence[str]) -> dict[str, PredictionRecord]:
        """See :class:`~instrumentation.store.protocol.PredictionStore`."""
        return self._store().get_predictions(model, ids)

    def sum_aggregates(self, model: str, version: str, *, since_bucket: int) -> dict[str, float]:
        """See :class:`~instrumentation.store.protocol.PredictionStore`."""
        return self._store().sum_aggregates(model, version, since_bucket=since_bucket)

    def bucket_cells(
        self, model: str, version: str, *, since_bucket: int, until_bucket: int | None = None
    ) -> dict[int, dict[str, float]]:
        """See :class:`~instrumentation.store.protocol.PredictionStore`."""
        return self._store().bucket_cells(
            model, version, since_bucket=since_bucket, until_bucket=until_bucket
        )

    def count_predictions(self, model: str) -> int:
        """See :class:`~instrumentation.store.protocol.PredictionStore`."""
        return self._store().count_predictions(model)

    def evict(self, model: str, *, now: float, retain: float, max_rows: int) -> int:
        """See :class:`~instrumentation.store.protocol.PredictionStore`."""
        return self._store().evict(model, now=now, retain=retain, max_rows=max_rows)

    def compact_aggregates(
        self, model: str, *, drop_before: int, rollup_before: int, rollup_width: int
    ) -> int:
        """See :class:`~instrumentation.store.protocol.PredictionStore`."""
        return self._store().compact_aggregates(
            model, drop_before=drop_before, rollup_before=rollup_before, rollup_width=rollup_width
        )

    def try_lease(self, name: str, holder: str, *, now: float, duration: float) -> bool:
        """See :class:`~instrumentation.store.protocol.PredictionStore`."""
        return self._store().try_lease(name, holder, now=now, duration=duration)

    def register_version(self, model: str, version: str, spec: str, *, now: float) -> None:
        """See :class:`~instrumentation.store.protocol.PredictionStore`."""
        self._store().register_version(model, version, spec, now=now)

    def cumulative_cells(self, model: str) -> dict[str, float]:
        """See :class:`~instrumentation.store.protocol.PredictionStore`."""
        return self._store().cumulative_cells(model)

    def model_versions(self, model: str) -> dict[str, VersionInfo]:
        """See :class:`~instrumentation.store.protocol.PredictionStore`."""
        return self._store().model_versions(model)

    def versions_with_data(self, model: str, *, since_bucket: int) -> set[str]:
        """See :class:`~instrumentation.store.protocol.PredictionStore`."""
        return self._store().versions_with_data(model, since_bucket=since_bucket)

    def close(self) -> None:
        """Stop trying to open; close the real store if it is open."""
        self._closed.set()
        if self._inner is not None:
            self._inner.close()
