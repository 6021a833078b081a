"""Prediction stores: where predictions wait for labels and additive aggregates accumulate."""

from __future__ import annotations

from instrumentation.config import DEFAULT_POSTGRES_SCHEMA, StoreURL
from instrumentation.store.deferred import DeferredStore
from instrumentation.store.protocol import PredictionStore
from instrumentation.store.sqlite import SQLiteStore


def open_store(
    url: StoreURL,
    *,
    workers: int = 1,
    connections: int | None = None,
    deferred: bool = False,
) -> PredictionStore:
    """The store a ``MONITOR_STORE_URL`` names.

    Args:
        url: the parsed URL: an SQLite file, or a PostgreSQL database.
        workers: worker processes of this replica (``MONITOR_WORKERS``), each opening
            its own store; PostgreSQL splits the replica's connections between them.
        connections: PostgreSQL connections one replica may open in all (default
            :data:`~instrumentation.store.postgres.CONNECTIONS_PER_REPLICA`); each
            worker's pool gets :func:`~instrumentation.store.postgres.pool_size`.
        deferred: open it on a background thread, retried until it opens; calls
            raise ``StoreUnavailable`` meanwhile (:class:`DeferredStore`), so a store
            that is down at start-up delays nothing.
    """
    if deferred:
        return DeferredStore(
            lambda: open_store(url, workers=workers, connections=connections),
            describe=url.describe(),
        )
    if url.conninfo is not None:
        # Imported here: psycopg is only loaded where PostgreSQL is used.
        from instrumentation.store import postgres

        budget = postgres.CONNECTIONS_PER_REPLICA if connections is None else connections
        return postgres.PostgresStore(
            url.conninfo,
            schema=url.schema or DEFAULT_POSTGRES_SCHEMA,
            max_connections=postgres.pool_size(workers, connections=budget),
        )
    if url.path is None:
        raise ValueError(f"store URL {url!r} names neither a file nor a database")
    return SQLiteStore(url.path)


__all__ = ["DeferredStore", "PredictionStore", "SQLiteStore", "open_store"]
