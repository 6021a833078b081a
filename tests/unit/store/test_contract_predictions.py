"""Every store: predictions are committed atomically, ids are unique, group values capped."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from instrumentation import DuplicatePredictionId
from instrumentation.store.protocol import PredictionStore
from tests.unit.store.contract import Backend, add, predictions, record


def test_added_predictions_round_trip_exactly(store: PredictionStore) -> None:
    classifier = record("p-1", groups={"region": "north", "age": "30-49"})
    regressor = record("p-2", label=None, value=12.5, scores=None)

    returned = add(store, [classifier, regressor])

    assert returned == [classifier, regressor]
    assert store.get_predictions("m", ["p-2", "p-1", "absent"]) == {
        "p-1": classifier,
        "p-2": regressor,
    }
    assert store.get_predictions("other-model", ["p-1"]) == {}
    assert store.count_predictions("m") == 2
    assert store.count_predictions("other-model") == 0
    assert store.sum_aggregates("m", "v1", since_bucket=0) == {'["predictions"]': 2.0}


def test_a_prediction_is_committed_before_add_returns(backend: Backend) -> None:
    writer, replica = backend.open(), backend.open()

    add(writer, [record("a")])

    # No flush, no close: another store object (connection, replica) sees it at once.
    assert set(replica.get_predictions("m", ["a"])) == {"a"}
    assert replica.count_predictions("m") == 1
    assert replica.sum_aggregates("m", "v1", since_bucket=0) == {'["predictions"]': 1.0}


def test_a_reused_id_rejects_the_whole_batch_atomically(store: PredictionStore) -> None:
    add(store, [record("taken")], cap=3)
    before = store.sum_aggregates("m", "v1", since_bucket=0)
    batch = [
        record("new-1", groups={"region": "a"}),
        record("new-2", groups={"region": "b"}),
        record("taken", groups={"region": "c"}),
        record("new-3"),
    ]

    with pytest.raises(DuplicatePredictionId) as raised:
        add(store, batch, cap=3)

    assert raised.value.prediction_id == "taken"
    assert str(raised.value) == "prediction id 'taken' already exists for this model"
    assert set(store.get_predictions("m", ["new-1", "new-2", "new-3", "taken"])) == {"taken"}
    assert store.count_predictions("m") == 1
    assert store.sum_aggregates("m", "v1", since_bucket=0) == before
    # Group values of the failed batch were not admitted either: three fresh ones still fit.
    fresh = [record(f"g-{v}", groups={"region": v}) for v in ("x", "y", "z")]
    assert [r.groups for r in add(store, fresh, cap=3)] == [
        {"region": "x"},
        {"region": "y"},
        {"region": "z"},
    ]


def test_a_reused_id_from_another_replica_is_rejected(backend: Backend) -> None:
    first, second = backend.open(), backend.open()
    add(first, [record("tx-1")])

    with pytest.raises(DuplicatePredictionId) as raised:
        add(second, [record("tx-2"), record("tx-1")])

    assert raised.value.prediction_id == "tx-1"
    assert first.count_predictions("m") == 1
    assert first.sum_aggregates("m", "v1", since_bucket=0) == {'["predictions"]': 1.0}


def test_an_id_repeated_within_one_batch_is_rejected(store: PredictionStore) -> None:
    with pytest.raises(DuplicatePredictionId) as raised:
        add(store, [record("a"), record("b"), record("a")])

    assert raised.value.prediction_id == "a"
    assert store.count_predictions("m") == 0
    assert store.sum_aggregates("m", "v1", since_bucket=0) == {}


def test_the_same_id_may_exist_for_two_models(store: PredictionStore) -> None:
    add(store, [record("shared")])
    add(store, [record("shared")], model="m2")

    assert store.count_predictions("m") == store.count_predictions("m2") == 1


# --- group values -------------------------------------------------------------------------------


def test_group_values_are_capped_with_an_overflow_bucket(store: PredictionStore) -> None:
    records = [record(f"p{i}", groups={"region": f"r{i}", "band": "x"}) for i in range(10)]
    records.append(record("missing", groups={"region": "__missing__", "band": "x"}))

    returned = store.add_predictions("m", records, predictions(11), max_group_values=3)

    expected = ["r0", "r1", "r2"] + ["__other__"] * 7 + ["__missing__"]
    assert [r.groups["region"] for r in returned] == expected
    assert {r.groups["band"] for r in returned} == {"x"}
    stored = store.get_predictions("m", [r.prediction_id for r in records])
    assert [stored[r.prediction_id].groups["region"] for r in records] == expected
    later = add(
        store,
        [record("again", groups={"region": "r1"}), record("new", groups={"region": "r10"})],
        cap=3,
    )
    assert [r.groups["region"] for r in later] == ["r1", "__other__"]
    # The cap is per model.
    other = add(store, [record("p", groups={"region": "r9"})], model="m2", cap=3)
    assert other[0].groups == {"region": "r9"}


def test_a_rolled_back_batch_admits_no_group_value(backend: Backend) -> None:
    store = backend.open()

    def added(target: PredictionStore, *pairs: tuple[str, str]) -> list[str]:
        records = [record(pid, groups={"g": value}) for pid, value in pairs]
        return [r.groups["g"] for r in add(target, records, cap=1)]

    # The second row finds x admitted for the first; the reused id then rolls both back.
    with pytest.raises(DuplicatePredictionId):
        added(store, ("p1", "x"), ("p2", "x"), ("p1", "x"))

    assert added(store, ("p3", "y")) == ["y"]  # y takes the only place
    assert added(store, ("p4", "x")) == ["__other__"]
    # Another replica (no cache) agrees.
    assert added(backend.open(), ("p5", "x")) == ["__other__"]


def test_two_replicas_admitting_at_once_agree_on_the_cap(backend: Backend) -> None:
    replicas = [backend.open(), backend.open()]
    barrier = threading.Barrier(2)
    rounds, cap = 10, 3

    def admit(index: int) -> list[list[str]]:
        seen: list[list[str]] = []
        for r in range(rounds):
            barrier.wait(timeout=30)
            records = [
                record(f"r{r}-{index}-{i}", groups={f"a{r}": f"{index}-{i}"}) for i in range(cap)
            ]
            seen.append([x.groups[f"a{r}"] for x in add(replicas[index], records, cap=cap)])
        return seen

    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(admit, [0, 1])

    sent = [f"{index}-{i}" for index in (0, 1) for i in range(cap)]
    for r in range(rounds):
        kept = sorted(v for v in first[r] + second[r] if v != "__other__")
        assert len(kept) == cap, (r, first[r], second[r])
        # A third replica, asking later, finds the same values admitted and no more.
        probe = [record(f"probe-{r}-{v}", groups={f"a{r}": v}) for v in sent]
        admitted = [x.groups[f"a{r}"] for x in add(backend.open(), probe, cap=cap)]
        assert sorted(v for v in admitted if v != "__other__") == kept
