"""The SQLite store's facade: the protocol's methods, each handed to the module of its concept.

=================  =====================================================
``connection``     the writer, readers, checkpoint thread, driver errors
``schema``         versions and migrations
``predictions``    insert with group admission (group commit), reads
``labels``         the join's transaction
``cells``          the upsert of cells, markers and counter; window reads
``housekeeping``   eviction, compaction
``leases``         leases and model versions
=================  =====================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from instrumentation.store.protocol import (
    Increments,
    Label,
    LabelAggregator,
    LabelOutcome,
    PredictionRecord,
    VersionInfo,
)
from instrumentation.store.sqlite import cells, housekeeping, leases, schema
from instrumentation.store.sqlite import labels as label_join
from instrumentation.store.sqlite.connection import Database, errors
from instrumentation.store.sqlite.predictions import Predictions, select
from instrumentation.store.window_cache import WindowCache


class SQLiteStore:
    """A :class:`~instrumentation.store.protocol.PredictionStore` in one SQLite file.

    Shared by every worker process on one host. Every method raises only the
    store's errors (:mod:`instrumentation.errors`), sqlite3's as their cause.

    >>> import tempfile, pathlib
    >>> store = SQLiteStore(pathlib.Path(tempfile.mkdtemp()) / "store.db")
    >>> store.count_predictions("demo")
    0
    """

    @errors
    def __init__(
        self,
        path: Path | str,
        *,
        busy_timeout: float = 30.0,
        checkpoint_seconds: float | None = 1.0,
    ) -> None:
        self.path = Path(path)
        self.db = Database(
            self.path, busy_timeout=busy_timeout, checkpoint_seconds=checkpoint_seconds
        )
        try:
            with self.db.transaction() as cur:
                schema.migrate(cur, self.path)
        except BaseException:
            self.db.conn.close()
            raise
        self._predictions = Predictions(self.db)
        self._windows = WindowCache()
        self.db.start_checkpoints()

    @errors
    def add_predictions(
        self,
        model: str,
        records: Sequence[PredictionRecord],
        increments: Increments,
        *,
        max_group_values: int,
    ) -> list[PredictionRecord]:
        """Insert the records and their increments in one transaction (see the protocol)."""
        return self._predictions.add(model, records, increments, max_group_values=max_group_values)

    @errors
    def apply_labels(
        self,
        model: str,
        labels: Sequence[tuple[str, Label | None]],
        *,
        now: float,
        ttl: float,
        aggregate: LabelAggregator,
    ) -> list[LabelOutcome]:
        """Join each label to its prediction in one transaction (see the protocol)."""
        return label_join.apply(self.db, model, labels, now=now, ttl=ttl, aggregate=aggregate)

    @errors
    def get_predictions(self, model: str, ids: Sequence[str]) -> dict[str, PredictionRecord]:
        """Stored records by id."""
        return select(self.db.reader(), model, ids)

    @errors
    def sum_aggregates(self, model: str, version: str, *, since_bucket: int) -> dict[str, float]:
        """Sum every cell over the buckets of a window, re-reading only changed buckets."""
        reader = self.db.reader()
        return self._windows.sums(
            lambda: cells.buckets(reader, model, version), model, version, since_bucket
        )

    @errors
    def bucket_cells(
        self, model: str, version: str, *, since_bucket: int, until_bucket: int | None = None
    ) -> dict[int, dict[str, float]]:
        """Each bucket's cells in ``[since_bucket, until_bucket)`` (see the protocol)."""
        reader = self.db.reader()
        return self._windows.bucket_cells(
            lambda: cells.buckets(reader, model, version),
            model,
            version,
            since_bucket,
            until_bucket,
        )

    @errors
    def count_predictions(self, model: str) -> int:
        """Rows stored for ``model``: its counter, else a count."""
        reader = self.db.reader()
        count = cells.counted(reader, model)
        return cells.count_rows(reader, model) if count is None else count

    @errors
    def evict(self, model: str, *, now: float, retain: float, max_rows: int) -> int:
        """Delete rows past ``retain`` seconds, then all but the newest ``max_rows``."""
        return housekeeping.evict(self.db, model, now=now, retain=retain, max_rows=max_rows)

    @errors
    def compact_aggregates(
        self, model: str, *, drop_before: int, rollup_before: int, rollup_width: int
    ) -> int:
        """Drop old buckets and roll older ones up into ``rollup_width`` buckets."""
        return housekeeping.compact(
            self.db,
            model,
            drop_before=drop_before,
            rollup_before=rollup_before,
            rollup_width=rollup_width,
        )

    @errors
    def try_lease(self, name: str, holder: str, *, now: float, duration: float) -> bool:
        """Take the lease if free or expired, renew it if ours."""
        return leases.try_lease(self.db, name, holder, now=now, duration=duration)

    @errors
    def register_version(self, model: str, version: str, spec: str, *, now: float) -> None:
        """Record a model version and its spec once (the first writer's stands)."""
        leases.register_version(self.db, model, version, spec, now=now)

    @errors
    def cumulative_cells(self, model: str) -> dict[str, float]:
        """``model``'s rollout cells: cumulative per version, and snapshots."""
        return leases.model_cells(self.db.reader(), model)

    @errors
    def model_versions(self, model: str) -> dict[str, VersionInfo]:
        """Every recorded version of ``model``."""
        return leases.model_versions(self.db, model)

    @errors
    def versions_with_data(self, model: str, *, since_bucket: int) -> set[str]:
        """Versions with aggregate cells in the buckets of a window."""
        return cells.versions_with_data(self.db.reader(), model, since_bucket)

    @errors
    def close(self) -> None:
        """Stop the checkpoint thread; close the writer and every thread's reader."""
        self.db.close()
