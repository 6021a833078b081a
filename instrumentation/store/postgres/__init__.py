"""PostgreSQL engine: predictions and aggregates shared by replicas on many hosts.

The facade is :class:`PostgresStore` (:mod:`.store`); each concept has its module (see
there). Imported only where PostgreSQL is used: psycopg is an optional dependency.
"""

from __future__ import annotations

from instrumentation.store.postgres.connection import (
    CONNECTIONS_PER_REPLICA,
    MAX_POOL,
    MIN_POOL,
    SHARDS,
    pool_size,
)
from instrumentation.store.postgres.housekeeping import EVICT_BATCH
from instrumentation.store.postgres.schema import NEWER_SCHEMA, SCHEMA_VERSION
from instrumentation.store.postgres.store import PostgresStore

__all__ = [
    "CONNECTIONS_PER_REPLICA",
    "EVICT_BATCH",
    "MAX_POOL",
    "MIN_POOL",
    "NEWER_SCHEMA",
    "SCHEMA_VERSION",
    "SHARDS",
    "PostgresStore",
    "pool_size",
]
