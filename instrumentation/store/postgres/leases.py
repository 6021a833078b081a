"""PostgreSQL leases and model versions: one conditional upsert each.

A lease is a row per name: the row lock makes exactly one of several replicas'
upserts win. Each is idempotent (the same holder renewing, the same version
registered again), so a connection lost under it is retried on another.
"""

from __future__ import annotations

import time

from instrumentation.store import rollout
from instrumentation.store.postgres import cells
from instrumentation.store.postgres.connection import Conn, Database
from instrumentation.store.protocol import VersionInfo


def try_lease(db: Database, name: str, holder: str, *, now: float, duration: float) -> bool:
    """Take the lease if free or expired, renew it if ours: one conditional upsert."""

    def upsert(conn: Conn) -> tuple[object, ...] | None:
        return conn.execute(
            db.q(
                "INSERT INTO {s}.leases AS l (name, holder, expires) VALUES (%s, %s, %s) "
                "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
                "expires = excluded.expires WHERE l.holder = excluded.holder OR l.expires < %s "
                "RETURNING holder"
            ),
            (name, holder, now + duration, now),
        ).fetchone()

    return db.idempotent(upsert) is not None


def register_version(db: Database, model: str, version: str, spec: str, *, now: float) -> None:
    """Record a model version and its spec once (the first writer's stands).

    The first record also snapshots every other version's cumulative cells, in the same
    transaction (see :mod:`~instrumentation.store.rollout`). Labels committed before its
    read are in the snapshot, the others after it: each label on exactly one side. Safe to
    retry on a fresh connection: a retry after a commit that did land inserts nothing and
    takes no second snapshot.
    """

    def record(conn: Conn) -> None:
        with conn.transaction():
            inserted = conn.execute(
                db.q(
                    "INSERT INTO {s}.model_versions (model, version, spec, first_seen) "
                    "VALUES (%s, %s, %s, %s) ON CONFLICT (model, version) DO NOTHING RETURNING 1"
                ),
                (model, version, spec, now),
            ).fetchone()
            if inserted is not None:
                totals = model_cells(db, conn, model)
                snapshot = rollout.snapshot_cells(version, totals, taken_at=time.time())
                cells.with_cells(db, conn, model, snapshot, "SELECT 1", ())

    db.idempotent(record)


def model_cells(db: Database, conn: Conn, model: str) -> dict[str, float]:
    """``model``'s model-wide rollout cells, shards summed (the stored-rows counter aside)."""
    rows = conn.execute(
        db.q(
            "SELECT key, sum(value) FROM {s}.aggregates WHERE model = %s AND version = %s "
            "AND bucket = %s GROUP BY key"
        ),
        (model, rollout.MODEL_VERSION, rollout.MODEL_BUCKET),
    ).fetchall()
    return {key: float(value) for key, value in rows if rollout.is_model_cell(key)}


def model_versions(db: Database, model: str) -> dict[str, VersionInfo]:
    """Every recorded version of ``model``."""
    rows = db.idempotent(
        lambda conn: conn.execute(
            db.q("SELECT version, spec, first_seen FROM {s}.model_versions WHERE model = %s"),
            (model,),
        ).fetchall()
    )
    return {version: VersionInfo(spec, float(first)) for version, spec, first in rows}
