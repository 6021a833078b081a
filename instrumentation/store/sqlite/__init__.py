"""SQLite engine: the embedded default, shared by every worker process on one host.

The facade is :class:`SQLiteStore` (:mod:`.store`); each concept has its module (see
there). The names below are what tests and the service import from here.
"""

from __future__ import annotations

from instrumentation.store.sqlite.connection import CHECKPOINT_BACKSTOP_PAGES, DELETED_FILE
from instrumentation.store.sqlite.schema import NEWER_SCHEMA, SCHEMA_VERSION
from instrumentation.store.sqlite.store import SQLiteStore

__all__ = [
    "CHECKPOINT_BACKSTOP_PAGES",
    "DELETED_FILE",
    "NEWER_SCHEMA",
    "SCHEMA_VERSION",
    "SQLiteStore",
]
