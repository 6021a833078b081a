"""Every store: the model versions it has seen, their specs, and which have data in a window."""

from __future__ import annotations

from instrumentation.store.protocol import PredictionStore, VersionInfo
from tests.unit.store.contract import Backend, predictions, record


def test_a_version_is_recorded_once_and_the_first_spec_stands(backend: Backend) -> None:
    a, b = backend.open(), backend.open()  # two replicas starting the same version
    a.register_version("m", "v1", '{"spec": 1}', now=100.0)
    b.register_version("m", "v1", '{"spec": "other"}', now=200.0)
    b.register_version("m", "v2", '{"spec": 2}', now=300.0)
    a.register_version("x", "v1", '{"spec": "x"}', now=400.0)

    assert a.model_versions("m") == {
        "v1": VersionInfo('{"spec": 1}', 100.0),
        "v2": VersionInfo('{"spec": 2}', 300.0),
    }
    assert b.model_versions("nothing") == {}


def test_versions_with_data_in_a_window(store: PredictionStore) -> None:
    store.add_predictions("m", [record("a")], predictions(1, "v1", 10), max_group_values=9)
    store.add_predictions("m", [record("b")], predictions(1, "v2", 20), max_group_values=9)
    store.add_predictions("x", [record("c")], predictions(1, "v3", 30), max_group_values=9)

    assert store.versions_with_data("m", since_bucket=0) == {"v1", "v2"}
    assert store.versions_with_data("m", since_bucket=11) == {"v2"}
    assert store.versions_with_data("m", since_bucket=21) == set()
