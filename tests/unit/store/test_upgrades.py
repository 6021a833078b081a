"""Upgrades lose nothing: a store written by the previous release opens, migrated in place.

``tests/fixtures/store_v1.db`` was written by the version-1 store code (see
``tests/fixtures/make_store_v1.py``), ``store_v3.db`` by the version-3 code (see
``make_store_v3.py``); each manifest holds what that code read back.
Each test works on a copy: the committed file is never opened for writing.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sklearn.metrics import accuracy_score, precision_recall_fscore_support

import instrumentation.store.postgres as postgres
import instrumentation.store.postgres.schema as postgres_schema
import instrumentation.store.sqlite.schema as sqlite_schema
from harness.postgres import PostgresCluster
from instrumentation import ModelMonitor, MonitorConfig, SQLiteStore, StoreError
from instrumentation.store.encoding import COUNTER_VERSION, MARKER_KEY
from instrumentation.store.sqlite import NEWER_SCHEMA, SCHEMA_VERSION
from tests.fixtures.make_store_v1 import (
    MANIFEST_FILE,
    SPEC,
    STORE_FILE,
    T0,
    TABLES,
    table_rows,
)
from tests.unit.store.contract import add, count_labels, record

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
REPO = FIXTURES.parents[1]
CLASSES = ["legit", "fraud"]


@pytest.fixture
def manifest() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / MANIFEST_FILE).read_text())
    return loaded


@pytest.fixture
def old_store(tmp_path: Path) -> Path:
    """A private copy of the version-1 store file."""
    copy = tmp_path / "store.db"
    shutil.copyfile(FIXTURES / STORE_FILE, copy)
    return copy


def _user_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def test_the_fixture_is_a_version_1_store(old_store: Path) -> None:
    assert _user_version(old_store) == 0  # version 1 wrote no marker
    assert set(table_rows(old_store)) == set(TABLES)


def test_a_version_1_store_opens_migrated_and_loses_nothing(
    old_store: Path, manifest: dict[str, Any]
) -> None:
    store = SQLiteStore(old_store, checkpoint_seconds=None)
    try:
        monitor = ModelMonitor(
            SPEC,
            store,
            config=MonitorConfig(min_group_samples=5, min_drift_samples=10),
            clock=lambda: manifest["now"],
        )
        windows = monitor.window_reports()
        labelled = {pid: truth for pid, _, truth in manifest["labelled"]}
        waiting = [pid for pid, _ in manifest["unlabelled"]]
        stored = store.get_predictions(SPEC.name, [*labelled, *waiting])
        old_version = store.get_predictions(
            SPEC.name, [pid for pid, _, _ in manifest["old_version"]]
        )
    finally:
        store.close()

    assert _user_version(old_store) == SCHEMA_VERSION == 4
    tables = table_rows(old_store)
    # The new table holds just the version the monitor recorded when it started.
    assert [row[:2] for row in tables.pop("model_versions")] == [[SPEC.name, SPEC.version]]
    # Every row of every version-1 table, unchanged; the rows the window cache and the
    # stored-rows counter add to aggregates (reserved versions) aside.
    tables["aggregates"] = [
        row for row in tables["aggregates"] if row[1] != COUNTER_VERSION and row[3] != MARKER_KEY
    ]
    assert tables == manifest["tables"]
    assert {pid: r.feedback for pid, r in stored.items()} == {
        **labelled,
        **dict.fromkeys(waiting),
    }
    assert len(old_version) == len(manifest["old_version"])
    # The figures v1 reported (it reported no span: `from`/`to` were added later).
    figures = {
        w: {k: v for k, v in r.items() if k not in ("from", "to")} for w, r in windows.items()
    }
    assert json.loads(json.dumps(figures)) == manifest["windows"]
    y_true = [truth for _, _, truth in manifest["labelled"]]
    y_pred = [predicted for _, predicted, _ in manifest["labelled"]]
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=CLASSES, zero_division=0
    )
    quality = windows["5m"]["quality"]
    assert quality["accuracy"]["value"] == pytest.approx(accuracy_score(y_true, y_pred), abs=1e-9)
    for i, cls in enumerate(CLASSES):
        assert quality["precision"]["per_class"][cls]["value"] == pytest.approx(precision[i])
        assert quality["recall"]["per_class"][cls]["value"] == pytest.approx(recall[i])
        assert quality["f1"]["per_class"][cls]["value"] == pytest.approx(f1[i])


def test_a_migrated_store_takes_predictions_and_labels(old_store: Path) -> None:
    store = SQLiteStore(old_store, checkpoint_seconds=None)
    try:
        add(store, [record("after-upgrade")])
        outcomes = store.apply_labels(
            "m", [("after-upgrade", "fraud")], now=T0 + 30, ttl=3600, aggregate=count_labels
        )
    finally:
        store.close()

    assert [o.status for o in outcomes] == ["matched"]


_OPENER = textwrap.dedent(
    """
    import json, logging, sys, time
    from pathlib import Path

    messages = []
    handler = logging.Handler()
    handler.emit = lambda r: messages.append(r.getMessage())
    log = logging.getLogger("instrumentation.store.sqlite")
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    from instrumentation.store.protocol import Increments, PredictionRecord
    from instrumentation.store.sqlite import SQLiteStore

    go = Path(sys.argv[2])
    while not go.exists():
        time.sleep(0.001)
    store = SQLiteStore(sys.argv[1], checkpoint_seconds=None)
    pid = f"child-{sys.argv[3]}"
    record = PredictionRecord(pid, "v9", 1.0, "a", None, None, {}, "1" * 32, "2" * 16)
    increments = Increments()
    increments.add("v9", 0, ("predictions",), 1.0)
    store.add_predictions("m", [record], increments, max_group_values=9)
    store.close()
    print(json.dumps(messages))
    """
)


def test_processes_opening_an_old_store_at_once_migrate_it_once(
    old_store: Path, manifest: dict[str, Any], tmp_path: Path
) -> None:
    go = tmp_path / "go"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _OPENER, str(old_store), str(go), str(i)],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(6)
    ]
    time.sleep(2.0)  # every child imported and waiting at the start line
    go.touch()
    results = [child.communicate(timeout=60) for child in children]

    assert [child.returncode for child in children] == [0] * 6, [err for _, err in results]
    migrations = [m for out, _ in results for m in json.loads(out) if "schema version" in m]
    assert migrations == [f"store {old_store}: schema version 1 -> 4"]
    assert _user_version(old_store) == SCHEMA_VERSION
    tables = table_rows(old_store)
    children_rows = [row for row in tables["predictions"] if row[0] == "m"]
    assert sorted(row[1] for row in children_rows) == [f"child-{i}" for i in range(6)]
    assert [row for row in tables["predictions"] if row[0] != "m"] == manifest["tables"][
        "predictions"
    ]


def test_a_store_from_a_newer_release_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    SQLiteStore(path, checkpoint_seconds=None).close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    before = table_rows(path)

    with pytest.raises(RuntimeError) as raised:
        SQLiteStore(path, checkpoint_seconds=None)

    assert str(raised.value) == NEWER_SCHEMA.format(path=path, found=99, known=SCHEMA_VERSION)
    assert str(path) in str(raised.value)
    assert (_user_version(path), table_rows(path)) == (99, before)


def test_a_new_store_starts_at_the_current_version(tmp_path: Path) -> None:
    SQLiteStore(tmp_path / "new.db", checkpoint_seconds=None).close()

    assert _user_version(tmp_path / "new.db") == SCHEMA_VERSION
    assert set(table_rows(tmp_path / "new.db")) == {*TABLES, "model_versions"}


def test_a_migration_that_fails_leaves_the_store_as_it_was(
    old_store: Path, manifest: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = "CREATE TABLE model_versions (model TEXT); CREATE TABLE predictions (x TEXT)"
    monkeypatch.setattr(sqlite_schema, "MIGRATIONS", (sqlite_schema.SCHEMA, broken))

    with pytest.raises(StoreError, match="already exists") as raised:
        SQLiteStore(old_store, checkpoint_seconds=None)

    assert isinstance(raised.value.__cause__, sqlite3.OperationalError)

    assert _user_version(old_store) == 0
    assert table_rows(old_store) == manifest["tables"]  # no model_versions: rolled back


# --- PostgreSQL: the same promise, from a version-1 schema ---------------------------------------


def test_a_version_1_postgres_schema_is_migrated_once_by_replicas_starting_together(
    postgres_cluster: PostgresCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema = f"up_{uuid.uuid4().hex[:12]}"
    with monkeypatch.context() as v1:
        v1.setattr(postgres_schema, "SCHEMA_VERSION", 1)
        v1.setattr(postgres_schema, "MIGRATIONS", postgres_schema.MIGRATIONS[:1])
        first = postgres.PostgresStore(postgres_cluster.url(), schema=schema)
        add(first, [record(f"p{i}") for i in range(5)])
        first.apply_labels("m", [("p0", "fraud")], now=T0 + 30, ttl=3600, aggregate=count_labels)
        before = first.sum_aggregates("m", "v1", since_bucket=0)
        first.close()
    with psycopg.connect(postgres_cluster.url(), autocommit=True) as conn:
        # This code wrote its counter and write markers; version 1 had neither.
        conn.execute(f"""DELETE FROM {schema}.aggregates WHERE version = '' OR key = '"writes"'""")
    barrier = threading.Barrier(4)

    def start() -> postgres.PostgresStore:
        barrier.wait(timeout=30)
        return postgres.PostgresStore(postgres_cluster.url(), schema=schema, max_connections=2)

    with ThreadPoolExecutor(4) as pool:
        replicas = list(pool.map(lambda _: start(), range(4)))
    try:
        stored = replicas[3].get_predictions("m", [f"p{i}" for i in range(5)])
        after = replicas[2].sum_aggregates("m", "v1", since_bucket=0)
        counted = replicas[1].count_predictions("m")
        add(replicas[0], [record("p5")], cap=10)  # the markers the migration gave its buckets
        later = replicas[2].sum_aggregates("m", "v1", since_bucket=0)
        fresh = replicas[1].sum_aggregates("m", "v1", since_bucket=0)
    finally:
        for replica in replicas:
            replica.close()

    with psycopg.connect(postgres_cluster.url(), autocommit=True) as conn:
        (version,) = conn.execute(f"SELECT version FROM {schema}.schema_version").fetchone() or (0,)
        (seen,) = conn.execute(f"SELECT count(*) FROM {schema}.model_versions").fetchone() or (-1,)
    assert (version, seen) == (postgres.SCHEMA_VERSION, 0) == (3, 0)
    assert counted == 5  # the counter, started from a count
    assert later == fresh == {**before, '["predictions"]': before['["predictions"]'] + 1}
    assert {pid: r.feedback for pid, r in stored.items()} == {
        "p0": "fraud",
        **dict.fromkeys(["p1", "p2", "p3", "p4"]),
    }
    assert after == before
