"""Schema version 3 -> 4: write markers move into the cells of the version they mark.

``tests/fixtures/store_v3.db`` was written by the version-3 store code (see
``tests/fixtures/make_store_v3.py``), which kept each bucket's marker under the version
``"\\x00writes\\x00" + version``; its manifest holds what that code read back. Each test
works on a copy.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from instrumentation import ModelMonitor, MonitorConfig, SQLiteStore
from instrumentation.store.encoding import MARKER_KEY
from instrumentation.store.sqlite import SCHEMA_VERSION
from instrumentation.store.sqlite.schema import V3_MARKER_PREFIX
from tests.fixtures.make_store_v1 import SPEC, table_rows
from tests.fixtures.make_store_v3 import MANIFEST_FILE, STORE_FILE
from tests.unit.store.contract import add, count_labels, record
from tests.unit.store.test_upgrades import _user_version

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


@pytest.fixture
def manifest() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / MANIFEST_FILE).read_text())
    return loaded


@pytest.fixture
def v3_store(tmp_path: Path) -> Path:
    copy = tmp_path / "store.db"
    shutil.copyfile(FIXTURES / STORE_FILE, copy)
    return copy


def test_the_fixture_is_a_version_3_store_with_v3_markers(
    v3_store: Path, manifest: dict[str, Any]
) -> None:
    assert _user_version(v3_store) == 3
    assert any(row[1].startswith(V3_MARKER_PREFIX) for row in manifest["tables"]["aggregates"])


def test_a_version_3_store_opens_with_its_markers_in_cells_and_the_same_figures(
    v3_store: Path, manifest: dict[str, Any]
) -> None:
    store = SQLiteStore(v3_store, checkpoint_seconds=None)
    try:
        monitor = ModelMonitor(
            SPEC,
            store,
            config=MonitorConfig(min_group_samples=5, min_drift_samples=10),
            clock=lambda: manifest["now"],
        )
        windows = monitor.window_reports()
        sums = {v: store.sum_aggregates(SPEC.name, v, since_bucket=0) for v in manifest["sums"]}
        per_bucket = {v: store.bucket_cells(SPEC.name, v, since_bucket=0) for v in manifest["sums"]}
        count = store.count_predictions(SPEC.name)
        versions = store.versions_with_data(SPEC.name, since_bucket=0)
    finally:
        store.close()

    assert _user_version(v3_store) == SCHEMA_VERSION == 4
    assert json.loads(json.dumps(windows)) == manifest["windows"]
    assert sums == manifest["sums"]
    for version, buckets in per_bucket.items():
        summed: dict[str, float] = {}
        for cells in buckets.values():
            for key, value in cells.items():
                summed[key] = summed.get(key, 0.0) + value
        assert summed == pytest.approx(manifest["sums"][version])
    assert count == manifest["count"]
    assert sorted(versions) == manifest["versions"]
    # Every row kept; each version-3 marker now a cell of its own version, same value.
    old = manifest["tables"]["aggregates"]
    expected = sorted(
        [m, v[len(V3_MARKER_PREFIX) :], b, MARKER_KEY, x]
        if v.startswith(V3_MARKER_PREFIX)
        else [m, v, b, k, x]
        for m, v, b, k, x in old
    )
    tables = table_rows(v3_store)
    assert sorted(tables.pop("aggregates")) == expected
    assert tables == {k: rows for k, rows in manifest["tables"].items() if k != "aggregates"}


def test_a_migrated_version_3_store_takes_predictions_and_labels(v3_store: Path) -> None:
    store = SQLiteStore(v3_store, checkpoint_seconds=None)
    try:
        add(store, [record("after-upgrade")])
        outcomes = store.apply_labels(
            "m",
            [("after-upgrade", "fraud")],
            now=record("x").created + 30,
            ttl=3600,
            aggregate=count_labels,
        )
        sums = store.sum_aggregates("m", "v1", since_bucket=0)
    finally:
        store.close()

    assert [o.status for o in outcomes] == ["matched"]
    assert sums == {'["predictions"]': 1.0, '["labels"]': 1.0, '["confusion","fraud","fraud"]': 1.0}
