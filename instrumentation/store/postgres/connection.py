"""PostgreSQL connections: the pool, transactions, shards, advisory locks, driver errors.

Every call is one transaction (READ COMMITTED) on a connection from a
``psycopg_pool.ConnectionPool``; connections are in autocommit mode, so a single
statement is its own transaction (one round trip) and several are wrapped in
``BEGIN`` … ``COMMIT`` by :meth:`Database.transaction`. ``synchronous_commit`` stays
on: a prediction is committed, and durable, before its call returns.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool

from instrumentation.store.boundary import translating

SHARDS: Final = 8
"""Rows per aggregate cell and bucket at most (see :mod:`.cells`)."""

CONNECTIONS_PER_REPLICA: Final = 16
"""Default connection budget of one replica, shared by its worker processes."""

MIN_POOL: Final = 2
"""Connections per worker at least: a request and a background job (gauges, eviction)."""

MAX_POOL: Final = 8
"""Connections per worker at most: transactions last milliseconds, more threads queue."""

Conn = psycopg.Connection[tuple[Any, ...]]


def is_unavailable(exc: BaseException) -> bool:
    """Whether a psycopg error says the store cannot work now (not a bug or bad data).

    Connection refused or lost, server shutting down (``OperationalError``,
    ``InterfaceError``); no free connection in the pool, or the pool closed.
    """
    # psycopg_pool's PoolTimeout and PoolClosed are OperationalErrors.
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


errors = translating(drivers=(psycopg.Error,), unavailable=is_unavailable)
"""Decorates the facade's methods: psycopg errors leave as the store's own."""


def pool_size(workers: int, *, connections: int = CONNECTIONS_PER_REPLICA) -> int:
    """Connections each of a replica's ``workers`` processes may open.

    The replica's ``connections`` budget is split between its workers and kept
    within ``MIN_POOL..MAX_POOL``; size the server's ``max_connections`` for
    replicas × workers × this.

    >>> pool_size(2), pool_size(4), pool_size(16)
    (8, 4, 2)
    """
    return max(MIN_POOL, min(MAX_POOL, connections // max(1, workers)))


class Database:
    """One process's pool of connections to one schema of a PostgreSQL database."""

    def __init__(
        self,
        conninfo: str,
        *,
        schema: str,
        min_connections: int,
        max_connections: int,
        timeout: float,
    ) -> None:
        self.schema = schema
        self._s = sql.Identifier(schema).as_string(None)
        options: dict[str, Any] = {"autocommit": True, "application_name": "model-monitor"}
        if "connect_timeout" not in conninfo_to_dict(conninfo):
            options["connect_timeout"] = max(1, round(timeout))
        self.pool: ConnectionPool[Conn] = ConnectionPool(
            conninfo,
            min_size=min_connections,
            max_size=max(min_connections, max_connections),
            kwargs=options,
            timeout=timeout,
            open=True,
            name=f"monitor-store-{schema}",
        )

    def q(self, text: str) -> str:
        """A statement with ``{s}`` replaced by the quoted schema name."""
        return text.format(s=self._s)

    @contextmanager
    def connection(self) -> Iterator[Conn]:
        """A pooled connection; a lost one makes the pool check all its idle ones.

        After a server restart every idle connection in the pool is dead: without the
        check, each would fail one request in turn before the pool replaced it.
        """
        try:
            with self.pool.connection() as conn:
                yield conn
        except psycopg.OperationalError:
            with contextlib.suppress(Exception):
                self.pool.check()
            raise

    @contextmanager
    def transaction(self) -> Iterator[Conn]:
        """A pooled connection inside ``BEGIN`` … ``COMMIT`` (rolled back on any error)."""
        with self.connection() as conn, conn.transaction():
            yield conn

    def close(self) -> None:
        """Close the pool and its connections."""
        self.pool.close()


def shard(conn: Conn) -> int:
    """This connection's aggregate shard: unique among live connections up to ``SHARDS``."""
    return conn.info.backend_pid % SHARDS


def advisory_lock(conn: Conn, name: str) -> None:
    """Wait for the advisory lock ``name`` (every replica's), held until the transaction ends."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (name,))
