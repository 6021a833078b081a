"""A full disk under the store: /predict still answers, /feedback says 503 and when to retry."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from api_helpers import instances_of, predict_ok, send_feedback
from starlette.testclient import TestClient

from harness.filesystems import fill, remount, tiny_filesystem


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with tiny_filesystem(tmp_path / "disk") as mounted:
        yield mounted


def test_without_room_for_store_or_spool_predictions_are_served_unrecorded(
    make_client: Callable[..., TestClient], disk: Path
) -> None:
    client = make_client(
        MONITOR_STORE_URL=f"sqlite:///{disk / 'store.db'}", MONITOR_SPOOL_DIR=str(disk / "spool")
    )
    (first,) = predict_ok(client, instances_of(1))
    filler = fill(disk)

    served = predict_ok(client, instances_of(3, seed=1))
    refused = send_feedback(client, [(first["prediction_id"], "fraud")])

    assert first["recorded"] is True
    assert [p["recorded"] for p in served] == [False, False, False]
    assert all(p["label"] in ("legit", "fraud") for p in served)  # the model's answers
    assert refused.status_code == 503, refused.text
    assert refused.headers["retry-after"] == "5"
    assert "prediction store is unavailable" in refused.json()["error"]
    filler.unlink()
    assert send_feedback(client, [(first["prediction_id"], "fraud")]).status_code == 200


def test_spooled_predictions_take_their_labels_once_the_store_is_back(
    make_client: Callable[..., TestClient], disk: Path, tmp_path: Path
) -> None:
    client = make_client(
        MONITOR_STORE_URL=f"sqlite:///{disk / 'store.db'}",
        MONITOR_SPOOL_DIR=str(tmp_path / "spool"),
    )
    predict_ok(client, instances_of(1))
    filler = fill(disk)

    spooled = predict_ok(client, instances_of(2, seed=2))
    ids = [p["prediction_id"] for p in spooled]
    waiting = send_feedback(client, [(i, "fraud") for i in ids])
    filler.unlink()
    joined = send_feedback(client, [(i, "fraud") for i in ids])

    assert [p["recorded"] for p in spooled] == [True, True]  # kept: a label can still join
    assert waiting.status_code == 503
    assert joined.status_code == 200, joined.text
    assert joined.json()["counts"]["matched"] == 2


def test_a_store_that_cannot_open_costs_no_prediction_and_reads_say_when_to_retry(
    make_client: Callable[..., TestClient], disk: Path, tmp_path: Path
) -> None:
    remount(disk, read_only=True)  # SQLite cannot open a database for writing here
    try:
        client = make_client(
            MONITOR_STORE_URL=f"sqlite:///{disk / 'store.db'}",
            MONITOR_SPOOL_DIR=str(tmp_path / "spool"),
        )
        served = predict_ok(client, instances_of(2))
        snapshot = client.get("/monitor")
        labels = send_feedback(client, [(p["prediction_id"], "fraud") for p in served])
    finally:
        remount(disk, read_only=False)

    assert [p["recorded"] for p in served] == [True, True]  # spooled until the store opens
    for response in (snapshot, labels):
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "5"
