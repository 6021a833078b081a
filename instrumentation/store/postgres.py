"""PostgreSQL store: predictions and aggregates shared by replicas on many hosts.

Every call is one transaction (READ COMMITTED) on a connection from a
``psycopg_pool.ConnectionPool``; ``synchronous_commit`` stays on, so a prediction is
committed, and durable, before :meth:`PostgresStore.add_predictions` returns.

Choices, and why:

- **Bounded round trips.** A request's rows go in as column arrays through
  ``unnest`` (one ``INSERT`` however many rows), and its pre-summed increments as
  one multi-row upsert attached to that ``INSERT`` as a CTE: one statement. Once
  the batch's group values are all known (they soon are), it runs in autocommit,
  its own transaction: one round trip and one commit per request. A label request
  takes four (``BEGIN``, the locking read, the update with its cells, ``COMMIT``).
  A reused id fails the statement as a whole (a unique violation), so nothing of
  the request stays. psycopg's pipeline mode was tried and measured slower here
  (about 2x per request on loopback): there are too few statements to overlap.
- **Exactly-once join.** :meth:`~PostgresStore.apply_labels` locks the rows it
  labels (``SELECT … FOR UPDATE``) before deciding; a replica handling the same
  label at the same instant waits for that commit, reads the label and reports
  ``duplicate``. Only the transaction that wrote the label adds its increments.
- **Sharded aggregate cells.** Every request adds to the same few cells (the
  bucket's prediction count, say); one row per cell would make every request wait
  for the row lock of the one before, until its commit. Cells are keyed
  ``(model, version, bucket, key, shard)`` with ``shard = backend pid % SHARDS``:
  the pid of the server process behind a connection is unique among live
  connections of every replica, so concurrent transactions write different rows
  (up to ``SHARDS`` of them) without any coordination. Reads ``SUM`` the shards, at
  most ``SHARDS`` times the rows of the recent buckets; compaction folds old
  buckets' shards into shard 0. A per-process number would still serialise the
  threads of one worker; a random one per transaction collides more often.
- **Deadlock-free.** Every statement that locks several rows locks them in one
  global order: ids for predictions, ``(version, bucket, key)`` for cells (an
  ``ORDER BY`` in the ``INSERT … SELECT``), so two transactions never wait on each
  other in a circle; every transaction writes predictions before cells.
- **Eviction never blocks predictions.** Expired rows go in batches of
  :data:`EVICT_BATCH`, each its own short transaction on the ``(model, created)``
  index, with ``SKIP LOCKED`` so a row being labelled is left for next time. Not
  time partitions: a partitioned table cannot enforce a unique prediction id
  across partitions (the key would have to include the time), the retention and
  row cap differ per model, and a cap in rows does not fall on partition bounds.
- **Reads flat in the traffic.** ``count_predictions`` reads a sharded counter
  that inserts and eviction batches keep in their own statements, and a window's
  sums come from a per-process cache of its buckets, re-reading only buckets whose
  write marker changed (``_postgres_counts``, ``_window_cache``): a snapshot costs
  the buckets written since the last one, not a ``count(*)`` and the whole day.
- **Leases** are a row per name, taken or renewed by one conditional upsert: the
  row lock makes exactly one of several replicas' upserts win.
- **Schema** created and migrated by the store, under a transaction-scoped
  advisory lock (replicas starting together wait for each other), recorded in a
  ``schema_version`` row. Tables live in their own schema (``monitor`` by default,
  ``?schema=`` in the URL): rows are keyed by model and version as in SQLite.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool

from instrumentation.config import DEFAULT_POSTGRES_SCHEMA
from instrumentation.store import _postgres_counts as counts
from instrumentation.store import _postgres_schema as schema
from instrumentation.store import _window_cache as window_cache
from instrumentation.store._join import (
    first_reused_id,
    group_pairs,
    join_labels,
    with_capped_groups,
)
from instrumentation.store._rows import RECORD_COLUMNS, encode_label, record_row, records_from_rows
from instrumentation.store.base import (
    DuplicatePredictionId,
    Increments,
    Label,
    LabelAggregator,
    LabelOutcome,
    PredictionRecord,
    VersionInfo,
)

logger = logging.getLogger(__name__)

SHARDS: Final = 8
"""Rows per aggregate cell and bucket at most (see the module docstring)."""

EVICT_BATCH: Final = 5000
"""Rows deleted per eviction transaction: short enough never to hold locks for long."""

CONNECTIONS_PER_REPLICA: Final = 16
"""Default connection budget of one replica, shared by its worker processes."""

MIN_POOL: Final = 2
"""Connections per worker at least: a request and a background job (gauges, eviction)."""

MAX_POOL: Final = 8
"""Connections per worker at most: transactions last milliseconds, more threads queue."""

_Conn = psycopg.Connection[tuple[Any, ...]]

SCHEMA_VERSION: Final = schema.SCHEMA_VERSION
NEWER_SCHEMA: Final = schema.NEWER_SCHEMA

_COLUMNS = ", ".join(RECORD_COLUMNS)
_COLUMN_TYPES = (
    "text[]",
    "text[]",
    "float8[]",
    "text[]",
    "float8[]",
    "text[]",
    "text[]",
    "text[]",
    "text[]",
    "text[]",
    "float8[]",
)


def pool_size(workers: int, *, connections: int = CONNECTIONS_PER_REPLICA) -> int:
    """Connections each of a replica's ``workers`` processes may open.

    The replica's ``connections`` budget is split between its workers and kept
    within ``MIN_POOL..MAX_POOL``; size the server's ``max_connections`` for
    replicas × workers × this.

    >>> pool_size(2), pool_size(4), pool_size(16)
    (8, 4, 2)
    """
    return max(MIN_POOL, min(MAX_POOL, connections // max(1, workers)))


class PostgresStore:
    """A :class:`~instrumentation.store.base.PredictionStore` in a PostgreSQL database.

    Args:
        conninfo: a libpq connection string or URL (``postgresql://user:pw@host/db``).
        schema: the schema holding the tables, created when missing.
        min_connections: connections the pool keeps open.
        max_connections: connections the pool may open (see :func:`pool_size`).
        timeout: seconds to wait for a free connection, and to connect, before the
            call fails (the monitor logs it; a prediction is never held longer).
    """

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
        self._s = sql.Identifier(schema).as_string(None)
        options: dict[str, Any] = {"autocommit": True, "application_name": "model-monitor"}
        if "connect_timeout" not in conninfo_to_dict(conninfo):
            options["connect_timeout"] = max(1, round(timeout))
        self._pool: ConnectionPool[_Conn] = ConnectionPool(
            conninfo,
            min_size=min_connections,
            max_size=max(min_connections, max_connections),
            kwargs=options,
            timeout=timeout,
            open=True,
            name=f"monitor-store-{schema}",
        )
        # Group values known to be admitted (admission is permanent), and attributes known
        # to be full at a cap: values outside them need no query. Updated after commits.
        self._admitted: set[tuple[str, str, str]] = set()
        self._full: dict[tuple[str, str], int] = {}
        self._windows = window_cache.WindowCache()
        try:
            self._migrate()
        except BaseException:
            self._pool.close()
            raise

    def _q(self, text: str) -> str:
        """A statement with ``{s}`` replaced by the quoted schema name."""
        return text.format(s=self._s)

    def _migrate(self) -> None:
        """Create or upgrade the schema; replicas starting together take turns."""
        with self._transaction() as conn:
            _lock(conn, f"instrumentation.store.postgres:{self.schema}")
            schema.migrate(conn, self.schema, self._q)

    @contextmanager
    def _connection(self) -> Iterator[_Conn]:
        """A pooled connection; a lost one makes the pool check all its idle ones.

        After a server restart every idle connection in the pool is dead: without the
        check, each would fail one request in turn before the pool replaced it.
        """
        try:
            with self._pool.connection() as conn:
                yield conn
        except psycopg.OperationalError:
            with contextlib.suppress(Exception):
                self._pool.check()
            raise

    @contextmanager
    def _transaction(self) -> Iterator[_Conn]:
        """A pooled connection inside ``BEGIN`` … ``COMMIT`` (rolled back on any error)."""
        with self._connection() as conn, conn.transaction():
            yield conn

    def add_predictions(
        self,
        model: str,
        records: Sequence[PredictionRecord],
        increments: Increments,
        *,
        max_group_values: int,
    ) -> list[PredictionRecord]:
        """Insert the records and their increments atomically (see the protocol).

        Once every group value of the batch is known from the cache, that is one
        statement in autocommit: one round trip, its own transaction. Otherwise the
        admission of new values and the rows share a transaction.
        """
        known: set[tuple[str, str, str]] = set()
        full: dict[tuple[str, str], int] = {}
        pairs = group_pairs(records)
        unsure = self._unsure_groups(model, pairs, max_group_values)
        try:
            with (
                self._connection() as conn,
                conn.transaction() if unsure else contextlib.nullcontext(),
            ):
                admitted = {(a, v) for a, v in pairs if (model, a, v) in self._admitted}
                if unsure:
                    admitted |= self._admit_groups(
                        conn, model, unsure, max_group_values, known, full
                    )
                capped = [with_capped_groups(r, admitted) for r in records]
                rows = [record_row(r) for r in capped]
                columns = [list(c) for c in zip(*rows, strict=True)] or [[] for _ in RECORD_COLUMNS]
                arrays = ", ".join(f"%b::{t}" for t in _COLUMN_TYPES)
                self._with_cells(
                    conn,
                    model,
                    increments,
                    f"INSERT INTO {{s}}.predictions (model, {_COLUMNS}) "
                    f"SELECT %s, r.* FROM unnest({arrays}) AS r ORDER BY 1, 2",
                    (model, *columns),
                    counted=len(rows),
                )
        except psycopg.errors.UniqueViolation as exc:
            if exc.diag.table_name != "predictions":
                raise
            # Nothing was written (the statement, and any transaction, rolled back).
            ids = [r.prediction_id for r in records]
            stored = self.get_predictions(model, ids)
            raise DuplicatePredictionId(first_reused_id(ids, stored)) from None
        self._admitted |= known
        self._full.update(full)
        return capped

    def _unsure_groups(
        self, model: str, pairs: list[tuple[str, str]], max_values: int
    ) -> list[tuple[str, str]]:
        """The pairs the cache cannot decide: neither known admitted nor of a full attribute."""
        return [
            (a, v)
            for a, v in pairs
            if (model, a, v) not in self._admitted
            and self._full.get((model, a), max_values + 1) > max_values
        ]

    def _admit_groups(
        self,
        conn: _Conn,
        model: str,
        unsure: list[tuple[str, str]],
        max_values: int,
        known: set[tuple[str, str, str]],
        full: dict[tuple[str, str], int],
    ) -> set[tuple[str, str]]:
        """Which ``unsure`` pairs are within the cap, admitting new ones in order.

        One query finds which are admitted already; an attribute with new values is
        then decided under an advisory lock of its own, so two replicas never both
        admit the last place. ``known`` and ``full`` collect what the caller may
        cache once the transaction commits.
        """
        rows = conn.execute(
            self._q(
                "SELECT attribute, value FROM {s}.group_values WHERE model = %s "
                "AND (attribute, value) IN (SELECT * FROM unnest(%b::text[], %b::text[]))"
            ),
            (model, [a for a, _ in unsure], [v for _, v in unsure]),
        ).fetchall()
        admitted: set[tuple[str, str]] = {(a, v) for a, v in rows}
        new: dict[str, list[str]] = {}
        for a, v in unsure:
            if (a, v) not in admitted:
                new.setdefault(a, []).append(v)
        for attribute in sorted(new):  # one lock order for every transaction
            admitted |= self._admit_new(conn, model, attribute, new[attribute], max_values, full)
        known.update((model, a, v) for a, v in admitted)
        return admitted

    def _admit_new(
        self,
        conn: _Conn,
        model: str,
        attribute: str,
        values: list[str],
        max_values: int,
        full: dict[tuple[str, str], int],
    ) -> set[tuple[str, str]]:
        """Admit the first of ``values`` that fit under the cap; return every admitted one."""
        _lock(conn, f"{self.schema}.group_values\x1f{model}\x1f{attribute}")
        stored = {
            v
            for (v,) in conn.execute(
                self._q("SELECT value FROM {s}.group_values WHERE model = %s AND attribute = %s"),
                (model, attribute),
            )
        }
        fresh = [v for v in values if v not in stored][: max(0, max_values - len(stored))]
        if fresh:
            conn.execute(
                self._q(
                    "INSERT INTO {s}.group_values (model, attribute, value) "
                    "SELECT %s, %s, v FROM unnest(%b::text[]) AS v"
                ),
                (model, attribute, fresh),
            )
        if len(stored) + len(fresh) >= max_values:
            full[(model, attribute)] = max_values
        return {(attribute, v) for v in (*stored, *fresh)}

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
        with self._transaction() as conn:
            records = self._select(conn, model, [pid for pid, _ in labels], lock=True)
            outcomes, matched, increments = join_labels(
                records, labels, now=now, ttl=ttl, aggregate=aggregate
            )
            if matched or increments:
                self._with_cells(
                    conn,
                    model,
                    increments,
                    "UPDATE {s}.predictions AS p SET feedback = u.feedback, feedback_at = %s "
                    "FROM unnest(%b::text[], %b::text[]) AS u(prediction_id, feedback) "
                    "WHERE p.model = %s AND p.prediction_id = u.prediction_id",
                    (
                        now,
                        [pid for pid, _ in matched],
                        [encode_label(label) for _, label in matched],
                        model,
                    ),
                )
        return outcomes

    def get_predictions(self, model: str, ids: Sequence[str]) -> dict[str, PredictionRecord]:
        """Stored records by id."""
        with self._connection() as conn:
            return self._select(conn, model, ids, lock=False)

    def _select(
        self,
        conn: _Conn,
        model: str,
        ids: Sequence[str],
        *,
        lock: bool,
    ) -> dict[str, PredictionRecord]:
        if not ids:
            return {}
        # FOR UPDATE in id order: two joins of overlapping labels lock in the same order.
        suffix = " ORDER BY prediction_id FOR UPDATE" if lock else ""
        rows = conn.execute(
            self._q(
                f"SELECT {_COLUMNS} FROM {{s}}.predictions "
                f"WHERE model = %s AND prediction_id = ANY(%b){suffix}"
            ),
            (model, list(dict.fromkeys(ids))),
        )
        return {r.prediction_id: r for r in records_from_rows(rows)}

    def _with_cells(
        self,
        conn: _Conn,
        model: str,
        increments: Increments,
        statement: str,
        args: tuple[Any, ...],
        *,
        counted: int = 0,
    ) -> None:
        """Run ``statement`` with the increments' upsert attached: one round trip for both.

        The upsert is a CTE that nothing reads, which PostgreSQL runs to completion
        after the main statement: rows, then cells, in every writer. Cells are locked
        in ``(version, bucket, key)`` order, in this connection's shard. The upsert
        also adds ``counted`` inserted rows to the stored-rows counter and a write
        marker to every bucket it touches (see :mod:`._postgres_counts`).
        """
        cells = increments.encoded()
        if counted:
            cells.append(counts.counter_cell(counted))
        cells += counts.marker_cells(cells)
        if not cells:
            conn.execute(self._q(statement), args)
            return
        versions, buckets, keys, amounts = (list(c) for c in zip(*cells, strict=True))
        conn.execute(
            self._q(
                "WITH cells AS (INSERT INTO {s}.aggregates "
                "(model, version, bucket, key, shard, value) "
                "SELECT %s, c.version, c.bucket, c.key, %s, c.value "
                "FROM unnest(%b::text[], %b::int8[], %b::text[], %b::float8[]) "
                "AS c(version, bucket, key, value) ORDER BY c.version, c.bucket, c.key "
                "ON CONFLICT (model, version, bucket, key, shard) "
                "DO UPDATE SET value = aggregates.value + excluded.value) " + statement
            ),
            (model, _shard(conn), versions, buckets, keys, amounts, *args),
        )

    def sum_aggregates(self, model: str, version: str, *, since_bucket: int) -> dict[str, float]:
        """Sum every cell over the buckets of a window, re-reading only changed buckets.

        See :mod:`~instrumentation.store._window_cache`; shards are summed in SQL.
        """
        with self._connection() as conn:
            return self._windows.sums(
                lambda: counts.buckets(conn, self._q, model, version), model, version, since_bucket
            )

    def bucket_cells(
        self, model: str, version: str, *, since_bucket: int, until_bucket: int | None = None
    ) -> dict[int, dict[str, float]]:
        """See :class:`~instrumentation.store.base.PredictionStore`."""
        until = counts.COUNTER_BUCKET if until_bucket is None else until_bucket
        out: dict[int, dict[str, float]] = {}
        with self._connection() as conn:
            rows = conn.execute(
                self._q(
                    "SELECT bucket, key, sum(value) FROM {s}.aggregates WHERE model = %s "
                    "AND version = %s AND bucket >= %s AND bucket < %s AND key <> %s "
                    "GROUP BY bucket, key"
                ),
                (model, version, since_bucket, until, counts.MARKER_KEY),
            ).fetchall()
        for bucket, key, value in rows:
            out.setdefault(int(bucket), {})[key] = float(value)
        return out

    def count_predictions(self, model: str) -> int:
        """Rows stored for ``model``: its counter (see :mod:`._postgres_counts`)."""
        with self._connection() as conn:
            return counts.counted(conn, self._q, model)

    def evict(self, model: str, *, now: float, retain: float, max_rows: int) -> int:
        """Delete rows past ``retain`` seconds, then all but the newest ``max_rows``.

        In batches of :data:`EVICT_BATCH`, each committed on its own, oldest first;
        rows locked by a join in progress are skipped (the next run takes them).
        As in SQLite, the cap's boundary is read first: an evictor working from an
        old boundary can only delete fewer rows, never one of the newest.
        """
        with self._connection() as conn:
            boundary = conn.execute(
                self._q(
                    "SELECT created, prediction_id FROM {s}.predictions WHERE model = %s "
                    "ORDER BY created DESC, prediction_id DESC LIMIT 1 OFFSET %s"
                ),
                (model, max_rows),
            ).fetchone()
            removed = self._delete_batches(conn, model, "created < %s", (now - retain,))
            if boundary is not None:
                removed += self._delete_batches(
                    conn, model, "(created, prediction_id) <= (%s, %s)", tuple(boundary)
                )
        return removed

    def _delete_batches(
        self,
        conn: _Conn,
        model: str,
        condition: str,
        args: tuple[Any, ...],
    ) -> int:
        removed = 0
        while True:
            # Autocommit: each batch is its own transaction, the counter's decrement in it.
            row = conn.execute(
                self._q(
                    "WITH gone AS (DELETE FROM {s}.predictions WHERE (model, prediction_id) IN ("
                    "SELECT model, prediction_id FROM {s}.predictions "
                    f"WHERE model = %s AND {condition} ORDER BY created, prediction_id "
                    "LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING 1), "
                    "counter AS (INSERT INTO {s}.aggregates "
                    "(model, version, bucket, key, shard, value) "
                    "SELECT %s, %s, %s, %s, %s, -count(*) FROM gone HAVING count(*) > 0 "
                    "ON CONFLICT (model, version, bucket, key, shard) "
                    "DO UPDATE SET value = aggregates.value + excluded.value) "
                    "SELECT count(*) FROM gone"
                ),
                (
                    model,
                    *args,
                    EVICT_BATCH,
                    model,
                    counts.COUNTER_VERSION,
                    counts.COUNTER_BUCKET,
                    counts.COUNTER_KEY,
                    _shard(conn),
                ),
            ).fetchone()
            deleted = int(row[0]) if row is not None else 0
            removed += deleted
            if deleted < EVICT_BATCH:
                return removed

    def compact_aggregates(
        self, model: str, *, drop_before: int, rollup_before: int, rollup_width: int
    ) -> int:
        """Drop old buckets; roll older ones, and their shards, into shard 0 of span buckets.

        Returns the cells (version, bucket, key) deleted, whatever their shards and
        not counting write markers: the figure SQLite gives for the same data.
        """
        with self._transaction() as conn:
            _lock(conn, f"{self.schema}.compact\x1f{model}")  # one compaction per model at once
            dropped = conn.execute(
                self._q(
                    "WITH gone AS (DELETE FROM {s}.aggregates WHERE model = %s AND bucket < %s "
                    "RETURNING version, bucket, key) "
                    "SELECT count(*) FROM (SELECT DISTINCT version, bucket, key FROM gone "
                    "WHERE key <> %s) AS d"
                ),
                (model, drop_before, counts.MARKER_KEY),
            ).fetchone()
            merged = conn.execute(
                self._q(
                    "WITH gone AS (DELETE FROM {s}.aggregates WHERE model = %(model)s "
                    "AND bucket < %(before)s AND (mod(bucket, %(width)s) <> 0 OR shard <> 0) "
                    "RETURNING version, bucket, key, value), "
                    "rolled AS (INSERT INTO {s}.aggregates "
                    "(model, version, bucket, key, shard, value) "
                    "SELECT %(model)s, version, (bucket / %(width)s) * %(width)s, key, 0, "
                    "sum(value) FROM gone GROUP BY 2, 3, 4 ORDER BY 2, 3, 4 "
                    "ON CONFLICT (model, version, bucket, key, shard) "
                    "DO UPDATE SET value = aggregates.value + excluded.value) "
                    "SELECT count(*) FROM (SELECT DISTINCT version, bucket, key FROM gone "
                    "WHERE mod(bucket, %(width)s) <> 0 AND key <> %(marker)s) AS d"
                ),
                {
                    "model": model,
                    "before": rollup_before,
                    "width": rollup_width,
                    "marker": counts.MARKER_KEY,
                },
            ).fetchone()
        return sum(int(row[0]) for row in (dropped, merged) if row is not None)

    def try_lease(self, name: str, holder: str, *, now: float, duration: float) -> bool:
        """Take the lease if free or expired, renew it if ours: one conditional upsert."""
        with self._connection() as conn:
            row = conn.execute(
                self._q(
                    "INSERT INTO {s}.leases AS l (name, holder, expires) VALUES (%s, %s, %s) "
                    "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
                    "expires = excluded.expires WHERE l.holder = excluded.holder OR l.expires < %s "
                    "RETURNING holder"
                ),
                (name, holder, now + duration, now),
            ).fetchone()
        return row is not None

    def register_version(self, model: str, version: str, spec: str, *, now: float) -> None:
        """Record a model version and its spec once (the first writer's stands)."""
        with self._connection() as conn:
            conn.execute(
                self._q(
                    "INSERT INTO {s}.model_versions (model, version, spec, first_seen) "
                    "VALUES (%s, %s, %s, %s) ON CONFLICT (model, version) DO NOTHING"
                ),
                (model, version, spec, now),
            )

    def model_versions(self, model: str) -> dict[str, VersionInfo]:
        """Every recorded version of ``model``."""
        with self._connection() as conn:
            rows = conn.execute(
                self._q(
                    "SELECT version, spec, first_seen FROM {s}.model_versions WHERE model = %s"
                ),
                (model,),
            ).fetchall()
        return {version: VersionInfo(spec, float(first)) for version, spec, first in rows}

    def versions_with_data(self, model: str, *, since_bucket: int) -> set[str]:
        """Versions with aggregate cells in the buckets of a window."""
        with self._connection() as conn:
            rows = conn.execute(
                self._q(
                    # Every data bucket has a write marker: their index, not the cells.
                    "SELECT DISTINCT version FROM {s}.aggregates WHERE model = %s "
                    "AND key = %s AND bucket >= %s"
                ),
                (model, counts.MARKER_KEY, since_bucket),
            ).fetchall()
        return {version for (version,) in rows}

    def close(self) -> None:
        """Close the pool and its connections."""
        self._pool.close()


def _shard(conn: _Conn) -> int:
    """This connection's aggregate shard: unique among live connections up to ``SHARDS``."""
    return conn.info.backend_pid % SHARDS


def _lock(conn: _Conn, name: str) -> None:
    """Wait for the advisory lock ``name`` (every replica's), held until the transaction ends."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (name,))
