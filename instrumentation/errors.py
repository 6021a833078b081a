"""The package's one exception tree: every error the library raises on purpose is a MonitorError.

Catch :class:`MonitorError` for anything the monitor refuses or cannot do, or a branch
of it: :class:`StoreError` for the prediction store, ``ConfigError`` (a bad setting,
``instrumentation.config``) and ``InvalidInput`` (a bad request field,
``instrumentation.spec``), each defined beside the code that raises it. A store engine
turns its driver's errors into these at its boundary (the driver's error stays as
``__cause__``), so no caller imports ``sqlite3`` or ``psycopg`` or guesses from a class name::

    try:
        monitor.feedback(items)
    except StoreUnavailable:
        ...  # 503, retry later

Each store error also keeps the builtin base it always had (``ValueError`` for a reused
id, ``RuntimeError`` for the others), so older ``except`` clauses still catch it.
"""

from __future__ import annotations


class MonitorError(Exception):
    """Root of every error the monitoring library raises on purpose."""


class StoreError(MonitorError):
    """The prediction store failed; a driver error, where there was one, is ``__cause__``.

    Raised as such for a driver error that is not unavailability (a bug, a constraint
    other than a reused id): retrying will not help.
    """


class StoreUnavailable(StoreError, RuntimeError):
    """The store cannot take or give data right now; the request may be retried later.

    A disk that is full or read-only, a file locked past the busy timeout, deleted or
    damaged, a server that refuses or lost the connection, a pool with no free
    connection. Raised by :class:`~instrumentation.ModelMonitor` where no spool can
    stand in (feedback, snapshots): a service answers 503 with ``Retry-After``.
    """


class DuplicatePredictionId(StoreError, ValueError):
    """A client-supplied prediction id is already stored for this model; nothing was written."""

    def __init__(self, prediction_id: str) -> None:
        super().__init__(f"prediction id {prediction_id!r} already exists for this model")
        self.prediction_id = prediction_id


class StoreSchemaTooNew(StoreError, RuntimeError):
    """The store was migrated by a newer release than this one; nothing was changed.

    Upgrade the library, or point ``MONITOR_STORE_URL`` at another store.
    """


__all__ = [
    "DuplicatePredictionId",
    "MonitorError",
    "StoreError",
    "StoreSchemaTooNew",
    "StoreUnavailable",
]
