"""10,000 distinct group values never make more than cap + overflow (+ missing) series.

Two monitors ("workers") share one SQLite file through separate connections, as
BentoML's worker processes do, and take turns recording batches of predictions
whose ``region`` is different on every row. The store admits the first
``max_group_values`` values it sees and maps every later one to ``__other__``;
everything downstream (stored rows, ``GET /monitor`` groups, ``ml.fairness.*``
gauges) must stay inside that bound.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from instrumentation import (
    FeatureSpec,
    ModelMonitor,
    ModelSpec,
    MonitorConfig,
    PredictionInput,
    PredictionRecord,
    SQLiteStore,
)
from instrumentation.spec import Task

CAP = 20
ROWS = 10_000
BATCH = 500
MISSING_EVERY = 250
"""Every this many rows, one row carries no region at all (→ ``__missing__``)."""

OTHER = "__other__"
MISSING = "__missing__"
T0 = 1_700_000_040.0

SPEC = ModelSpec(
    "cardinality-test",
    "v1",
    "binary",
    (FeatureSpec("amount", "number"),),
    ("legit", "fraud"),
    sensitive_attributes=("region",),
)


class Worker:
    """One monitor with its own store connection, meter provider and in-memory reader."""

    def __init__(self, path: Path, name: str) -> None:
        self.store = SQLiteStore(path)
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(metric_readers=[self.reader])
        self.monitor = ModelMonitor(
            SPEC,
            self.store,
            meter_provider=self.provider,
            # Every admitted group holds one labelled row: report it anyway, so the
            # per-group gauges exist and the bound is tested, not vacuous.
            config=MonitorConfig(max_group_values=CAP, min_group_samples=1),
            instance_id=name,
            clock=lambda: T0,
        )

    def predict(self, regions: Sequence[str | None], first_id: int) -> list[PredictionRecord]:
        inputs = [
            PredictionInput(
                {"amount": float(i % 97)},
                id=f"p{first_id + i}",
                groups={} if region is None else {"region": region},
            )
            for i, region in enumerate(regions)
        ]
        with self.monitor.predict(inputs) as rec:
            p = [(i % 97) / 97.0 for i in range(len(inputs))]
            return rec.set_outputs(
                labels=["fraud" if q >= 0.5 else "legit" for q in p],
                scores=[[1.0 - q, q] for q in p],
            )

    def close(self) -> None:
        self.provider.shutdown()
        self.store.close()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[tuple[Worker, Worker]]:
    pair = (Worker(tmp_path / "store.db", "worker-a"), Worker(tmp_path / "store.db", "worker-b"))
    yield pair
    for worker in pair:
        worker.close()


def region_rows() -> list[str | None]:
    """ROWS distinct region values in send order, with a region-less row every MISSING_EVERY."""
    rows: list[str | None] = []
    for i in range(ROWS):
        if i % MISSING_EVERY == 0:
            rows.append(None)
        rows.append(f"region-{i:05d}")
    return rows


def group_values_in_metrics(reader: InMemoryMetricReader) -> dict[str, set[str]]:
    """``ml.group`` values per metric name, over every exported series of ``region``."""
    found: dict[str, set[str]] = {}
    data = reader.get_metrics_data()
    for resource_metrics in data.resource_metrics if data else ():
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    attrs: dict[str, Any] = dict(point.attributes or {})
                    if "ml.group" not in attrs:
                        continue
                    assert metric.name.startswith("ml.fairness."), metric.name
                    assert attrs["ml.sensitive_attribute"] == "region"
                    found.setdefault(metric.name, set()).add(attrs["ml.group"])
    return found


def test_ten_thousand_group_values_stay_within_cap(workers: tuple[Worker, Worker]) -> None:
    rows = region_rows()
    sent_regions = [r for r in rows if r is not None]
    admitted = sent_regions[:CAP]
    expected_group = {r: (r if r in admitted else OTHER) for r in sent_regions}

    # The two workers take turns, batch by batch, on the same store file.
    returned: dict[str, PredictionRecord] = {}
    region_of: dict[str, str | None] = {}
    for k, start in enumerate(range(0, len(rows), BATCH)):
        batch = rows[start : start + BATCH]
        for record in workers[k % 2].predict(batch, first_id=start):
            returned[record.prediction_id] = record
        region_of.update({f"p{start + i}": r for i, r in enumerate(batch)})
    assert len(returned) == len(rows)

    # Labels, also from alternating workers; every one matches.
    ids = list(returned)
    for k, start in enumerate(range(0, len(ids), BATCH)):
        chunk = ids[start : start + BATCH]
        outcome = workers[(k + 1) % 2].monitor.feedback(
            [(pid, "fraud" if int(pid[1:]) % 3 == 0 else "legit") for pid in chunk]
        )
        assert outcome.counts["matched"] == len(chunk)

    # Every stored row, and what predict returned for it, carries the capped value.
    stored = workers[0].store.get_predictions(SPEC.name, ids)
    for pid in ids:
        region = region_of[pid]
        expected = MISSING if region is None else expected_group[region]
        assert stored[pid].groups == {"region": expected}, pid
        assert returned[pid].groups == {"region": expected}, pid
    bound = {*admitted, OTHER, MISSING}
    assert {r.groups["region"] for r in stored.values()} == bound
    assert len(bound) == CAP + 2

    # GET /monitor: the same groups, with the overflow holding every later value.
    fairness = workers[1].monitor.snapshot()["windows"]["5m"]["fairness"]["region"]
    assert set(fairness["groups"]) == bound
    assert fairness["groups"][OTHER]["n"] == ROWS - CAP
    assert fairness["groups"][MISSING]["n"] == ROWS // MISSING_EVERY
    assert fairness["overall"]["n"] == len(rows)

    # Exported gauges: one collection from each worker (only the lease holder reports).
    per_metric: dict[str, set[str]] = {}
    for worker in workers:
        for name, values in group_values_in_metrics(worker.reader).items():
            per_metric.setdefault(name, set()).update(values)
    assert sorted(per_metric) == [
        f"ml.fairness.{rate}{suffix}"
        for rate in ("accuracy", "fpr", "precision", "selection_rate", "tpr")
        for suffix in ("", ".lower", ".samples", ".upper")
    ]
    for name, values in per_metric.items():
        # Precision/TPR/FPR are undefined (no gauge) for a 1-row group without the
        # denominator, so those may list fewer groups; none may list more.
        assert values <= bound, f"{name}: {sorted(values - bound)[:5]}"
        assert len(values) <= CAP + 2
    assert per_metric["ml.fairness.selection_rate"] == bound
    assert per_metric["ml.fairness.selection_rate.samples"] == bound


def test_admission_is_permanent_and_shared_by_every_connection(
    workers: tuple[Worker, Worker], tmp_path: Path
) -> None:
    first = [f"early-{i}" for i in range(CAP)]
    workers[0].predict(first, first_id=0)  # fills the cap
    workers[1].predict(["late-0", "late-1"], first_id=100)  # overflow, seen once

    # A fresh connection (a worker started later, empty cache) decides the same way,
    # whatever order the values come in.
    fresh = Worker(tmp_path / "store.db", "worker-c")
    try:
        for k, worker in enumerate((*workers, fresh)):
            probe = ["late-1", first[-1], "never-seen", first[0], "late-0"]
            records = worker.predict(probe, first_id=1000 + 10 * k)
            assert [r.groups["region"] for r in records] == [
                OTHER,
                first[-1],
                OTHER,
                first[0],
                OTHER,
            ], worker.monitor.instance_id
    finally:
        fresh.close()


@pytest.mark.parametrize(
    ("task", "classes", "rates"),
    [
        ("binary", ("no", "yes"), ("selection_rate", "accuracy", "precision", "tpr", "fpr")),
        ("multiclass", ("a", "b", "c"), ("selection_rate", "accuracy", "precision", "tpr", "fpr")),
        ("regression", (), ("mae", "rmse", "mape", "r2")),
    ],
)
def test_per_group_gauges_have_instruments_before_any_data(
    task: Task, classes: tuple[str, ...], rates: tuple[str, ...], tmp_path: Path
) -> None:
    # Instruments are created once, before any data; groups only appear with data, so
    # the per-group gauges must be registered up front or they are never exported.
    spec = ModelSpec("m", "v", task, (FeatureSpec("x", "number"),), classes, ("region",))
    store = SQLiteStore(tmp_path / "store.db")
    provider = MeterProvider()
    monitor = ModelMonitor(spec, store, meter_provider=provider)
    registered = {i.name: i.unit for i in monitor.window_gauges.instruments}
    provider.shutdown()
    store.close()
    for rate in rates:
        assert registered[f"ml.fairness.{rate}"] == ""
        assert registered[f"ml.fairness.{rate}.samples"] == "{sample}"
