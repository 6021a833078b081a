"""``GET /monitor/history`` and the page's files in process; ``MONITOR_READ_TOKEN``."""

from __future__ import annotations

from collections.abc import Callable

from api_helpers import instances_of, predict_ok
from starlette.testclient import TestClient

from service.auth import READ_UNAUTHORIZED_MESSAGE
from service.ui import STATIC_DIR, TIME_PARAMETER


def test_history_ends_at_the_snapshot_window(client: TestClient) -> None:
    body = predict_ok(client, instances_of(20, seed=1))
    client.post(
        "/feedback",
        json={"labels": [{"prediction_id": p["prediction_id"], "label": "legit"} for p in body]},
    )

    history = client.get("/monitor/history", params={"window": "5m", "step": "1m"})
    snapshot = client.get("/monitor").json()

    assert history.status_code == 200, history.text
    found = history.json()
    assert found["model"] == snapshot["model"]
    assert (found["window"], found["step"]) == (300, 60)
    assert set(found["retention"]) == {
        "bucket_seconds",
        "rollup_seconds",
        "exact_since",
        "kept_since",
    }
    series = found["versions"][snapshot["model"]["version"]]
    assert len(series["predictions"]) == 6  # a window back from the end of this bucket
    assert sum(p["value"] for p in series["predictions"]) == 20
    last = series["quality"]["accuracy"][-1]
    window = snapshot["windows"]["5m"]["quality"]["accuracy"]
    assert {k: last[k] for k in ("value", "lower", "upper", "n")} == window
    assert set(series) == {"predictions", "labels", "quality", "estimated", "drift", "fairness"}
    assert series["drift"]["psi_threshold"] == snapshot["windows"]["5m"]["drift"]["psi_threshold"]


def test_history_parameters_are_checked_by_name(client: TestClient) -> None:
    bad = client.get("/monitor/history", params={"window": "five"})
    assert bad.status_code == 400
    assert bad.json()["error"].startswith("window='five': expected a positive duration")
    bad = client.get("/monitor/history", params={"from": "yesterday"})
    assert bad.json() == {"error": TIME_PARAMETER.format(name="from", value="yesterday")}
    bad = client.get("/monitor/history", params={"step": "90s"})
    assert bad.status_code == 400
    assert "whole multiples" in bad.json()["error"]
    iso = client.get(
        "/monitor/history",
        params={"from": "2026-12-01T00:00:00Z", "to": "2026-12-01T01:00:00Z", "step": "5m"},
    )
    assert iso.status_code == 200, iso.text
    assert (iso.json()["from"], iso.json()["to"]) == (1796083200, 1796086800)
    auto = client.get(
        "/monitor/history", params={"from": "2026-12-01T00:00:00Z", "to": "1796169600"}
    )
    assert auto.json()["step"] == 360  # a day in at most 240 whole-minute steps


def test_the_page_and_its_assets_are_served(client: TestClient) -> None:
    page = client.get("/ui")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "/ui/assets/app.js" in page.text and "//cdn" not in page.text
    for name in ("app.js", "app.css", "vendor/uPlot.iife.min.js", "vendor/uPlot.min.css"):
        asset = client.get(f"/ui/assets/{name}")
        assert asset.status_code == 200, f"{name}: run `make venv` (npm ci copies uPlot)"
        assert asset.content == (STATIC_DIR / name).read_bytes()


def test_a_read_token_protects_the_figures_not_the_page(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(MONITOR_READ_TOKEN="s3cret")
    for path in ("/monitor", "/monitor/history"):
        refused = client.get(path)
        assert refused.status_code == 401
        assert refused.json() == {"error": READ_UNAUTHORIZED_MESSAGE}
        assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get(path, headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert client.get("/ui").status_code == 200  # holds no figures; it asks for the token
    assert client.get("/ui/assets/app.js").status_code == 200
