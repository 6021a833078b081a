"""PostgreSQL leases and model versions: one conditional upsert each.

A lease is a row per name: the row lock makes exactly one of several replicas'
upserts win. Each is idempotent (the same holder renewing, the same version
registered again), so a connection lost under it is retried on another.
"""

from __future__ import annotations

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
    """Record a model version and its spec once (the first writer's stands)."""

    def insert(conn: Conn) -> None:
        conn.execute(
            db.q(
                "INSERT INTO {s}.model_versions (model, version, spec, first_seen) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (model, version) DO NOTHING"
            ),
            (model, version, spec, now),
        )

    db.idempotent(insert)


def model_versions(db: Database, model: str) -> dict[str, VersionInfo]:
    """Every recorded version of ``model``."""
    rows = db.idempotent(
        lambda conn: conn.execute(
            db.q("SELECT version, spec, first_seen FROM {s}.model_versions WHERE model = %s"),
            (model,),
        ).fetchall()
    )
    return {version: VersionInfo(spec, float(first)) for version, spec, first in rows}
