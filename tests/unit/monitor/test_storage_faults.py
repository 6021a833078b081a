"""A store that cannot write never fails a prediction: real faults, spooled, then replayed.

Each fault is real — a full tmpfs, a read-only remount, a competing writer holding the
lock, the database file deleted — and the figures after the replay equal those of a
monitor that never saw a fault.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

from harness.filesystems import fill, remount, tiny_filesystem
from instrumentation import ModelMonitor, MonitorConfig, Spool, SQLiteStore, StoreUnavailable
from instrumentation.store import DeferredStore
from instrumentation.store.protocol import Increments
from instrumentation.store.sqlite import DELETED_FILE
from tests.unit.monitor.monitor_support import BINARY, Clock, by_attrs, inputs, metrics

MODEL = {"ml.model.name": "fraud-test", "ml.model.version": "v1"}


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with tiny_filesystem(tmp_path / "disk") as mounted:
        yield mounted


def make_monitor(
    store: SQLiteStore, clock: Clock, spool: Spool | None, meter_provider: MeterProvider | None
) -> ModelMonitor:
    return ModelMonitor(
        BINARY,
        store,
        tracer_provider=TracerProvider(),
        meter_provider=meter_provider,
        clock=clock,
        config=MonitorConfig(prediction_ttl=3600.0),
        spool=spool,
    )


def predict(monitor: ModelMonitor, amounts: list[float], ids: list[str]) -> str | None:
    """Predict; return where the rows went (``stored``, ``spooled``, ``unrecorded``)."""
    with monitor.predict(inputs(amounts, ids=ids)) as rec:
        p = [a / 100.0 for a in amounts]
        records = rec.set_outputs(
            labels=["fraud" if q >= 0.5 else "legit" for q in p], scores=[[1 - q, q] for q in p]
        )
    assert [r.prediction_id for r in records] == ids  # answered, whatever the store did
    return rec.kept


def figures(monitor: ModelMonitor) -> dict[str, object]:
    return monitor.snapshot()["windows"]


def reference_figures(tmp_path: Path, clock: Clock) -> dict[str, object]:
    """The same traffic on a store that never failed."""
    store = SQLiteStore(tmp_path / "reference.db")
    monitor = make_monitor(store, clock, None, None)
    predict(monitor, [10.0, 90.0], ["a", "b"])
    predict(monitor, [70.0, 20.0, 60.0], ["c", "d", "e"])
    monitor.feedback([(i, "fraud") for i in "abcde"])
    out = figures(monitor)
    store.close()
    return out


def test_a_full_disk_spools_then_replays_and_the_figures_are_whole(
    disk: Path, tmp_path: Path
) -> None:
    clock, reader = Clock(), InMemoryMetricReader()
    store = SQLiteStore(disk / "store.db", checkpoint_seconds=None)
    spool = Spool(tmp_path / "spool", owner="w1", max_bytes=1 << 20)
    monitor = make_monitor(store, clock, spool, MeterProvider(metric_readers=[reader]))
    assert predict(monitor, [10.0, 90.0], ["a", "b"]) == "stored"
    filler = fill(disk)

    assert predict(monitor, [70.0, 20.0, 60.0], ["c", "d", "e"]) == "spooled"
    with pytest.raises(StoreUnavailable):  # labels wait: their predictions are not stored yet
        monitor.feedback([("c", "fraud")])

    filler.unlink()
    assert monitor.replay_spool() == 3
    assert monitor.feedback([(i, "fraud") for i in "abcde"]).counts["matched"] == 5
    assert figures(monitor) == reference_figures(tmp_path, clock)
    points = metrics(reader)
    assert by_attrs(points["ml.predictions.spooled"]) == {frozenset(MODEL.items()): 3}
    assert by_attrs(points["ml.predictions.replayed"]) == {frozenset(MODEL.items()): 3}
    store.close()


def test_without_room_anywhere_the_prediction_is_served_and_counted_unrecorded(
    disk: Path,
) -> None:
    reader = InMemoryMetricReader()
    store = SQLiteStore(disk / "store.db", checkpoint_seconds=None)
    spool = Spool(disk / "spool", owner="w1", max_bytes=1 << 20)  # on the same full disk
    monitor = make_monitor(store, Clock(), spool, MeterProvider(metric_readers=[reader]))
    fill(disk)

    assert predict(monitor, [70.0], ["c"]) == "unrecorded"

    unrecorded = by_attrs(metrics(reader)["ml.predictions.unrecorded"])
    assert unrecorded == {frozenset({**MODEL, "ml.unrecorded.reason": "spool_full"}.items()): 1}
    store.close()


def test_a_store_on_a_read_only_filesystem_spools_until_it_can_open(
    disk: Path, tmp_path: Path
) -> None:
    clock = Clock()
    SQLiteStore(disk / "store.db", checkpoint_seconds=None).close()
    remount(disk, read_only=True)
    try:
        store = DeferredStore(
            lambda: SQLiteStore(disk / "store.db", checkpoint_seconds=None),
            describe="read-only test store",
            retry_seconds=0.05,
        )
        assert not store.wait_open(0.3)  # SQLite cannot open it for writing
        monitor = make_monitor(
            store, clock, Spool(tmp_path / "s", owner="w", max_bytes=1 << 20), None
        )  # type: ignore[arg-type]  # a DeferredStore is a store
        assert predict(monitor, [10.0, 90.0], ["a", "b"]) == "spooled"
        assert predict(monitor, [70.0, 20.0, 60.0], ["c", "d", "e"]) == "spooled"
    finally:
        remount(disk, read_only=False)
    assert store.wait_open(5.0)
    assert monitor.replay_spool() == 5
    monitor.feedback([(i, "fraud") for i in "abcde"])
    assert figures(monitor) == reference_figures(tmp_path, clock)
    store.close()


def test_a_lock_held_past_the_busy_timeout_spools(tmp_path: Path) -> None:
    clock = Clock()
    store = SQLiteStore(tmp_path / "store.db", busy_timeout=0.2, checkpoint_seconds=None)
    monitor = make_monitor(store, clock, Spool(tmp_path / "s", owner="w", max_bytes=1 << 20), None)
    predict(monitor, [10.0, 90.0], ["a", "b"])
    competitor = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
    competitor.execute("BEGIN IMMEDIATE")  # another writer that never lets go

    assert predict(monitor, [70.0, 20.0, 60.0], ["c", "d", "e"]) == "spooled"

    competitor.execute("ROLLBACK")
    competitor.close()
    assert monitor.replay_spool() == 3
    monitor.feedback([(i, "fraud") for i in "abcde"])
    assert figures(monitor) == reference_figures(tmp_path, clock)
    store.close()


def test_a_deleted_database_file_is_never_written_into(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "store.db", checkpoint_seconds=None)
    spool = Spool(tmp_path / "s", owner="w", max_bytes=1 << 20)
    monitor = make_monitor(store, Clock(), spool, None)
    (tmp_path / "store.db").unlink()

    assert predict(monitor, [70.0], ["c"]) == "spooled"  # not into the unlinked file
    with pytest.raises(StoreUnavailable) as raised:
        store.add_predictions("fraud-test", [], Increments(), max_group_values=1)
    assert str(raised.value) == DELETED_FILE.format(path=tmp_path / "store.db")
    assert spool.pending == 1
    store.close()
