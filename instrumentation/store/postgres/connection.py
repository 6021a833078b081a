"""PostgreSQL connections: the pool, transactions, shards, advisory locks, driver errors.

Every call is one transaction (READ COMMITTED) on a connection from a
``psycopg_pool.ConnectionPool``; connections are in autocommit mode, so a single
statement is its own transaction (one round trip) and several are wrapped in
``BEGIN`` … ``COMMIT`` by :meth:`Database.transaction`. ``synchronous_commit`` stays
on: a prediction is committed, and durable, before its call returns.

**After a server restart** every pooled connection is dead. A connection is checked
as it leaves the pool (:func:`_check`): at no cost while its socket is quiet, with
a round trip when the server wrote to it while it sat idle (the ``FATAL`` a
shutdown sends before closing it) or when it sat idle long (a peer gone without a
word). A dead one is replaced before any statement is sent on it. What is still
lost in flight is retried only where that is safe: a read, or a write whose
statement was never sent (:meth:`Database.retrying`). A write sent on a connection
that then broke may have committed: it is not retried here (a prediction goes to
the spool, whose replay recognises rows already stored; feedback answers 503).
"""

from __future__ import annotations

import contextlib
import select
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final, TypeVar

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from instrumentation.store.boundary import translating

SHARDS: Final = 8
"""Rows per aggregate cell and bucket at most (see :mod:`.cells`)."""

CONNECTIONS_PER_REPLICA: Final = 16
"""Default connection budget of one replica, shared by its worker processes."""

MIN_POOL: Final = 2
"""Connections per worker at least: a request and a background job (gauges, eviction)."""

MAX_POOL: Final = 8
"""Connections per worker at most: transactions last milliseconds, more threads queue."""

CHECK_IDLE_SECONDS: Final = 30.0
"""A connection idle longer than this is checked (one round trip) before it is used."""

Conn = psycopg.Connection[tuple[Any, ...]]
T = TypeVar("T")


def is_unavailable(exc: BaseException) -> bool:
    """Whether a psycopg error says the store cannot work now (not a bug or bad data).

    Connection refused or lost, server shutting down (``OperationalError``,
    ``InterfaceError``); no free connection in the pool, or the pool closed.
    """
    # psycopg_pool's PoolTimeout and PoolClosed are OperationalErrors.
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


def connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` says the connection broke or the server went away (not the pool).

    Connection exceptions (SQLSTATE class 08), an operator or shutdown ending the
    session (class 57P), or a client-side failure with no SQLSTATE ("server closed
    the connection unexpectedly"). A pool timeout is not: retrying it doubles the wait.
    """
    if not isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return False
    if isinstance(exc, PoolTimeout | PoolClosed):
        return False
    state = exc.sqlstate
    return state is None or state.startswith(("08", "57P"))


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
        self._idle_since: weakref.WeakKeyDictionary[Conn, float] = weakref.WeakKeyDictionary()
        self.pool: ConnectionPool[Conn] = ConnectionPool(
            conninfo,
            min_size=min_connections,
            max_size=max(min_connections, max_connections),
            kwargs=options,
            timeout=timeout,
            check=self._check,
            reset=self._returned,
            open=True,
            name=f"monitor-store-{schema}",
        )

    def _returned(self, conn: Conn) -> None:
        """The pool's ``reset``: note when ``conn`` went idle."""
        self._idle_since[conn] = time.monotonic()

    def _check(self, conn: Conn) -> None:
        """The pool's ``check`` on checkout: raises for a dead connection (the pool replaces it).

        Free while the socket is quiet and the connection was used recently; a round
        trip when the server wrote while it was idle, or it was idle long.
        """
        idle = time.monotonic() - self._idle_since.get(conn, float("-inf"))
        if idle > CHECK_IDLE_SECONDS or _readable(conn):
            ConnectionPool.check_connection(conn)

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

    def retrying(self, work: Callable[[Conn, list[bool]], T]) -> T:
        """``work(conn, sent)`` on a pooled connection; once more on another if it broke.

        ``work`` sets ``sent[0] = True`` before sending what may commit a write: once
        sent, the failure propagates (it may have committed). A read, a write lost
        before it was sent, or a deadlock's victim (rolled back), runs again on a
        fresh connection.
        """
        sent = [False]
        try:
            with self.connection() as conn:
                return work(conn, sent)
        except psycopg.Error as exc:
            retry = connection_lost(exc) or isinstance(exc, psycopg.errors.DeadlockDetected)
            if sent[0] or not retry:
                raise
        with self.connection() as conn:
            return work(conn, sent)

    def idempotent(self, work: Callable[[Conn], T]) -> T:
        """``work(conn)``, a read or an idempotent write: once more if the connection broke."""
        return self.retrying(lambda conn, _sent: work(conn))

    @contextmanager
    def transaction(self) -> Iterator[Conn]:
        """A pooled connection inside ``BEGIN`` … ``COMMIT`` (rolled back on any error)."""
        with self.connection() as conn, conn.transaction():
            yield conn

    def close(self) -> None:
        """Close the pool and its connections."""
        self.pool.close()


def _readable(conn: Conn) -> bool:
    """Whether the server wrote to an idle connection (a notice, or its goodbye and EOF)."""
    try:
        ready, _, _ = select.select([conn.fileno()], [], [], 0)
    except (OSError, ValueError, psycopg.Error):
        return True  # closed or unusable: let the real check say so
    return bool(ready)


def shard(conn: Conn) -> int:
    """This connection's aggregate shard: unique among live connections up to ``SHARDS``."""
    return conn.info.backend_pid % SHARDS


def advisory_lock(conn: Conn, name: str) -> None:
    """Wait for the advisory lock ``name`` (every replica's), held until the transaction ends."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (name,))
