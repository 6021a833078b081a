"""SQLite leases and model versions: small rows, each written in a transaction of its own."""

from __future__ import annotations

import time

from instrumentation.store import rollout
from instrumentation.store.protocol import VersionInfo
from instrumentation.store.sqlite import cells
from instrumentation.store.sqlite.connection import Database

_MODEL_CELLS = "SELECT key, value FROM aggregates WHERE model=? AND version=? AND bucket=?"


def try_lease(db: Database, name: str, holder: str, *, now: float, duration: float) -> bool:
    """Take the lease if free or expired, renew it if ours."""
    with db.transaction() as cur:
        cur.execute(
            "INSERT INTO leases (name, holder, expires) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET holder=excluded.holder, expires=excluded.expires "
            "WHERE leases.holder=excluded.holder OR leases.expires<?",
            (name, holder, now + duration, now),
        )
        (current,) = cur.execute("SELECT holder FROM leases WHERE name=?", (name,)).fetchone()
    return bool(current == holder)


def register_version(db: Database, model: str, version: str, spec: str, *, now: float) -> None:
    """Record a model version and its spec once (the first writer's stands).

    The first record also snapshots every other version's cumulative cells, in the same
    transaction (see :mod:`~instrumentation.store.rollout`).
    """
    with db.transaction() as cur:
        cur.execute(
            "INSERT INTO model_versions (model, version, spec, first_seen) VALUES (?,?,?,?) "
            "ON CONFLICT (model, version) DO NOTHING",
            (model, version, spec, now),
        )
        if cur.rowcount == 1:
            totals = dict(model_cells(cur, model))
            snapshot = rollout.snapshot_cells(version, totals, taken_at=time.time())
            cells.write(cur, model, snapshot)


def model_cells(cur: cells.Target, model: str) -> dict[str, float]:
    """``model``'s model-wide rollout cells (the stored-rows counter aside)."""
    rows = cur.execute(_MODEL_CELLS, (model, rollout.MODEL_VERSION, rollout.MODEL_BUCKET))
    return {key: float(value) for key, value in rows if rollout.is_model_cell(key)}


def model_versions(db: Database, model: str) -> dict[str, VersionInfo]:
    """Every recorded version of ``model``."""
    rows = db.reader().execute(
        "SELECT version, spec, first_seen FROM model_versions WHERE model=?", (model,)
    )
    return {version: VersionInfo(spec, float(first)) for version, spec, first in rows}
