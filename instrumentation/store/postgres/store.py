"""The PostgreSQL store's facade: the protocol's methods, each handed to its concept's module.

=================  ===========================================================
``connection``     the pool, transactions, shards, advisory locks, driver errors
``schema``         versions and migrations (under an advisory lock)
``predictions``    the one-statement insert, group admission, reads
``labels``         the join: rows claimed by one ``UPDATE … RETURNING``, cells
``cells``          sharded upserts of cells, markers and counter; window reads
``housekeeping``   eviction in batches, compaction
``leases``         leases and model versions
=================  ===========================================================

Every statement that locks several rows locks them in one global order where it
can (ids for predictions, ``(version, bucket, key)`` for cells), and every
transaction writes predictions before cells; the label claim locks in its plan's
order, and a deadlock's victim is retried (see :mod:`.labels`).
"""

from __future__ import annotations

from collections.abc import Sequence

from instrumentation.config import DEFAULT_POSTGRES_SCHEMA
from instrumentation.store.postgres import cells, housekeeping, leases, schema
from instrumentation.store.postgres import labels as label_join
from instrumentation.store.postgres.connection import MAX_POOL, Database, advisory_lock, errors
from instrumentation.store.postgres.predictions import Predictions, select
from instrumentation.store.protocol import (
    Increments,
    Label,
    LabelAggregator,
    LabelOutcome,
    PredictionRecord,
    VersionInfo,
)
from instrumentation.store.window_cache import WindowCache


class PostgresStore:
    """A :class:`~instrumentation.store.protocol.PredictionStore` in a PostgreSQL database.

    Shared by replicas on many hosts. Every method raises only the store's errors
    (:mod:`instrumentation.errors`), psycopg's as their cause.

    Args:
        conninfo: a libpq connection string or URL (``postgresql://user:pw@host/db``).
        schema: the schema holding the tables, created when missing.
        min_connections: connections the pool keeps open.
        max_connections: connections the pool may open (see :func:`.pool_size`).
        timeout: seconds to wait for a free connection, and to connect, before the
            call fails (the monitor logs it; a prediction is never held longer).
    """

    @errors
    def __init__(
        self,
        conninfo: str,
        *,
        schema: str = DEFAULT_POSTGRES_SCHEMA,
        min_connections: int = 1,
        max_connections: int = MAX_POOL,
        timeout: float = 10.0,
    ) -> None:
        self.schema = schema
        self.db = Database(
            conninfo,
            schema=schema,
            min_connections=min_connections,
            max_connections=max_connections,
            timeout=timeout,
        )
        try:
            self._migrate()
        except BaseException:
            self.db.close()
            raise
        self._predictions = Predictions(self.db)
        self._windows = WindowCache()

    def _migrate(self) -> None:
        """Create or upgrade the schema; replicas starting together take turns."""
        with self.db.transaction() as conn:
            advisory_lock(conn, f"instrumentation.store.postgres:{self.schema}")
            schema.migrate(conn, self.schema, self.db.q)

    @errors
    def add_predictions(
        self,
        model: str,
        records: Sequence[PredictionRecord],
        increments: Increments,
        *,
        max_group_values: int,
    ) -> list[PredictionRecord]:
        """Insert the records and their increments atomically (see the protocol)."""
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
        return self.db.idempotent(lambda conn: select(self.db, conn, model, ids, lock=False))

    @errors
    def sum_aggregates(self, model: str, version: str, *, since_bucket: int) -> dict[str, float]:
        """Sum every cell over the buckets of a window, re-reading only changed buckets."""
        return self.db.idempotent(
            lambda conn: self._windows.sums(
                lambda: cells.buckets(self.db, conn, model, version), model, version, since_bucket
            )
        )

    @errors
    def bucket_cells(
        self, model: str, version: str, *, since_bucket: int, until_bucket: int | None = None
    ) -> dict[int, dict[str, float]]:
        """Each bucket's cells in ``[since_bucket, until_bucket)`` (see the protocol)."""
        return self.db.idempotent(
            lambda conn: self._windows.bucket_cells(
                lambda: cells.buckets(self.db, conn, model, version),
                model,
                version,
                since_bucket,
                until_bucket,
            )
        )

    @errors
    def count_predictions(self, model: str) -> int:
        """Rows stored for ``model``: its counter, summed over shards."""
        return self.db.idempotent(lambda conn: cells.counted(self.db, conn, model))

    @errors
    def evict(self, model: str, *, now: float, retain: float, max_rows: int) -> int:
        """Delete rows past ``retain`` seconds, then all but the newest ``max_rows``."""
        return housekeeping.evict(self.db, model, now=now, retain=retain, max_rows=max_rows)

    @errors
    def compact_aggregates(
        self, model: str, *, drop_before: int, rollup_before: int, rollup_width: int
    ) -> int:
        """Drop old buckets; roll older ones, and their shards, into shard 0 of span buckets."""
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
        """``model``'s rollout cells: cumulative per version, and snapshots (shards summed)."""
        with self.db.connection() as conn:
            return leases.model_cells(self.db, conn, model)

    @errors
    def model_versions(self, model: str) -> dict[str, VersionInfo]:
        """Every recorded version of ``model``."""
        return leases.model_versions(self.db, model)

    @errors
    def versions_with_data(self, model: str, *, since_bucket: int) -> set[str]:
        """Versions with aggregate cells in the buckets of a window."""
        return self.db.idempotent(
            lambda conn: cells.versions_with_data(self.db, conn, model, since_bucket)
        )

    @errors
    def close(self) -> None:
        """Close the pool and its connections."""
        self.db.close()
