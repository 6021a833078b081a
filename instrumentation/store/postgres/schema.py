"""The PostgreSQL store's schema: its versions and the migration that brings a store up.

Tables live in their own schema (``monitor`` by default, ``?schema=`` in the URL):
rows are keyed by model and version as in SQLite; aggregate cells also by a shard
(see :mod:`.cells`). The version is a ``schema_version`` row.

Every replica runs :func:`migrate` at start, inside one transaction holding an advisory
lock (taken by the caller), so replicas starting together take turns: the first
migrates, the others find it done. A schema newer than this code is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

import psycopg

from instrumentation.errors import StoreSchemaTooNew

logger = logging.getLogger(__name__)

SCHEMA_VERSION: Final = 3
"""The schema this code writes; a store with a newer one refuses to open."""

NEWER_SCHEMA: Final = (
    "the store schema {schema!r} is at version {found}, newer than this library's "
    "{known}: upgrade the library or point MONITOR_STORE_URL at another schema"
)
"""Raised (as :class:`~instrumentation.errors.StoreSchemaTooNew`) when an older replica meets
a migrated schema."""

MIGRATIONS: Final = (
    # 1: the tables of the SQLite store, plus a shard in the aggregate key.
    """
    CREATE TABLE {s}.predictions (
        model text NOT NULL,
        prediction_id text NOT NULL,
        version text NOT NULL,
        created double precision NOT NULL,
        label text,
        value double precision,
        scores text,
        groups text NOT NULL,
        trace_id text NOT NULL,
        span_id text NOT NULL,
        feedback text,
        feedback_at double precision,
        PRIMARY KEY (model, prediction_id)
    ) WITH (fillfactor = 90);  -- room on the page for the label's HOT update
    CREATE INDEX predictions_by_age ON {s}.predictions (model, created, prediction_id);
    CREATE TABLE {s}.aggregates (
        model text NOT NULL,
        version text NOT NULL,
        bucket bigint NOT NULL,
        key text NOT NULL,
        shard smallint NOT NULL,
        value double precision NOT NULL,
        PRIMARY KEY (model, version, bucket, key, shard)
    );
    CREATE TABLE {s}.group_values (
        model text NOT NULL,
        attribute text NOT NULL,
        value text NOT NULL,
        PRIMARY KEY (model, attribute, value)
    );
    CREATE TABLE {s}.leases (
        name text PRIMARY KEY,
        holder text NOT NULL,
        expires double precision NOT NULL
    )
    """,
    # 2: the model versions a store has seen (for per-version reports), as in SQLite.
    """
    CREATE TABLE {s}.model_versions (
        model text NOT NULL,
        version text NOT NULL,
        spec text,
        first_seen double precision,
        PRIMARY KEY (model, version)
    )
    """,
    # 3: the stored-rows counter and per-bucket write markers, cells of `aggregates`
    # (see encoding), each started from what is stored; a partial index finds
    # the markers. The share lock holds inserts off until the count is committed;
    # version-2 code still running in a rolling upgrade writes neither, so finish one.
    """
    LOCK TABLE {s}.predictions IN SHARE MODE;
    LOCK TABLE {s}.aggregates IN SHARE ROW EXCLUSIVE MODE;
    DELETE FROM {s}.aggregates WHERE version = '';
    INSERT INTO {s}.aggregates (model, version, bucket, key, shard, value)
    SELECT model, '', 4611686018427387904, '["stored_predictions"]', 0, count(*)
    FROM {s}.predictions GROUP BY model;
    INSERT INTO {s}.aggregates (model, version, bucket, key, shard, value)
    SELECT model, version, bucket, '"writes"', 0, 1 FROM {s}.aggregates
    WHERE version <> '' GROUP BY model, version, bucket
    ON CONFLICT (model, version, bucket, key, shard) DO NOTHING;
    CREATE INDEX aggregates_writes ON {s}.aggregates (model, version, bucket)
    WHERE key = '"writes"'
    """,
)
"""``MIGRATIONS[i]`` takes a schema from version ``i`` to ``i + 1``, in one transaction."""


def migrate(conn: psycopg.Connection[tuple[Any, ...]], name: str, q: Callable[[str], str]) -> None:
    """Bring schema ``name`` to :data:`SCHEMA_VERSION` (``q`` fills in its quoted name).

    Raises:
        StoreSchemaTooNew: the schema is newer than this code (:data:`NEWER_SCHEMA`).
    """
    conn.execute(q("CREATE SCHEMA IF NOT EXISTS {s}"))
    conn.execute(
        q(
            "CREATE TABLE IF NOT EXISTS {s}.schema_version ("
            "one boolean PRIMARY KEY DEFAULT true CHECK (one), version integer NOT NULL)"
        )
    )
    row = conn.execute(q("SELECT version FROM {s}.schema_version")).fetchone()
    found = int(row[0]) if row is not None else 0
    if found > SCHEMA_VERSION:
        raise StoreSchemaTooNew(NEWER_SCHEMA.format(schema=name, found=found, known=SCHEMA_VERSION))
    for script in MIGRATIONS[found:]:
        conn.execute(q(script))
    if found < SCHEMA_VERSION:
        conn.execute(
            q(
                "INSERT INTO {s}.schema_version (version) VALUES (%s) "
                "ON CONFLICT (one) DO UPDATE SET version = excluded.version"
            ),
            (SCHEMA_VERSION,),
        )
        logger.info("store schema %s: version %d -> %d", name, found, SCHEMA_VERSION)
