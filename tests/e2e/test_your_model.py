"""The *your model* tutorial, end to end: saved with the helper, built, served by tag.

The tutorial's save block (``docs/tutorials/your-model.md``, repeated in the README) runs
on a clean store; its client blocks (marked ``server breast-cancer``) run against the bento.

The bento is built for ``breast-cancer`` in a model store whose default model is the
demo's ``fraud-detector``; served by tag with no ``MONITOR_MODEL``, it serves the model
it was built with, and every figure equals scikit-learn on the rows sent.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from harness.serving import REPO, clean_environ, copy_home
from tests.docs_pages import served_blocks, your_model_example

from .conftest import StartServer
from .test_docs_served import ERROR_BODY, run_block
from .traffic import ok_json

pytestmark = pytest.mark.e2e

EXAMPLE = your_model_example()
DUMP_TEST_ROWS = """
import json, sys
edges = np.quantile(x_train["mean radius"], [1 / 3, 2 / 3])  # the tutorial client's group rule
json.dump(
    {"rows": x_test.to_dict("records"), "labels": list(y_test), "edges": list(edges)},
    open(sys.argv[1], "w"),
)
"""
TEMPLATE_FILES = {
    str(p.relative_to(REPO))
    for p in [*(REPO / "service").glob("*.py"), *(REPO / "service" / "ui").rglob("*")]
    if p.is_file() and p.name != "train.py"
}
"""What the bento ships of service/: the template and its page, not the demo's training script."""


def run(env: dict[str, str], *args: str, cwd: Path = REPO) -> str:
    done = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def size_band(radius: float, edges: list[float]) -> str:
    return ("small", "medium", "large")[int(np.searchsorted(edges, radius, side="right"))]


@pytest.fixture
def built(tmp_path: Path, trained_home: Path) -> tuple[Path, str, dict[str, Any]]:
    """A home with the demo models and breast-cancer, a bento built for it, the test rows."""
    home = copy_home(trained_home, tmp_path)
    env = {**clean_environ(), "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true"}
    data = tmp_path / "test-rows.json"
    run(env, "-c", EXAMPLE + DUMP_TEST_ROWS, str(data))
    out = run({**env, "MONITOR_MODEL": "breast-cancer"}, "-m", "bentoml", "build", "-o", "tag")
    match = re.search(r"__tag__:(\S+)", out)
    assert match, out
    return home, match.group(1), json.loads(data.read_text())


def test_the_readme_model_is_built_served_by_tag_and_its_figures_equal_sklearn(
    built: tuple[Path, str, dict[str, Any]], tmp_path: Path, start_server: StartServer
) -> None:
    home, tag, data = built
    bento = home / "bentos" / tag.replace(":", "/") / "src"
    shipped = {str(p.relative_to(bento)) for p in bento.rglob("*") if p.is_file()}
    assert {p for p in shipped if p.startswith("service/")} == TEMPLATE_FILES
    assert {p.split("/")[0] for p in shipped} == {"service", "instrumentation", "bentofile.yaml"}

    # No MONITOR_MODEL, and fraud-detector is the store's default: the bento's model wins.
    server = start_server(target=tag, home=home, cwd=tmp_path)
    rows, labels = data["rows"], data["labels"]
    instances = [
        {"features": row, "groups": {"size_band": size_band(row["mean radius"], data["edges"])}}
        for row in rows
    ]
    with server.client() as client:
        body = ok_json(client.post("/predict", json={"instances": instances}))
        feedback = ok_json(
            client.post(
                "/feedback",
                json={
                    "labels": [
                        {"prediction_id": p["prediction_id"], "label": y}
                        for p, y in zip(body["predictions"], labels, strict=True)
                    ]
                },
            )
        )
        snapshot = ok_json(client.get("/monitor"))
        docs = ok_json(client.get("/docs.json"))
    assert body["model"]["name"] == "breast-cancer"
    assert feedback["counts"]["matched"] == len(rows)
    assert "mean radius" in json.dumps(docs["components"]["schemas"])

    predicted = [p["label"] for p in body["predictions"]]
    scores = np.array([p["scores"]["malignant"] for p in body["predictions"]])
    quality = snapshot["windows"]["5m"]["quality"]
    assert quality["accuracy"]["value"] == pytest.approx(
        accuracy_score(labels, predicted), abs=1e-9
    )
    for name, metric in (
        ("precision", precision_score),
        ("recall", recall_score),
        ("f1", f1_score),
    ):
        for cls in ("benign", "malignant"):
            expected = metric(labels, predicted, pos_label=cls)
            assert quality[name]["per_class"][cls]["value"] == pytest.approx(expected, abs=1e-9)
    truth = [y == "malignant" for y in labels]
    assert quality["log_loss"]["value"] == pytest.approx(
        log_loss(truth, scores, labels=[False, True]), abs=1e-9
    )
    assert quality["brier_score"]["value"] == pytest.approx(
        brier_score_loss(truth, scores), abs=1e-9
    )
    auc = quality["roc_auc"]
    assert abs(auc["value"] - roc_auc_score(truth, scores)) <= auc["max_error"] + 1e-12


def test_a_bento_refuses_to_serve_another_model(
    built: tuple[Path, str, dict[str, Any]], tmp_path: Path, start_server: StartServer
) -> None:
    home, tag, _ = built
    server = start_server(
        {"MONITOR_MODEL": "fraud-detector"}, target=tag, home=home, cwd=tmp_path, wait=False
    )
    assert server.wait_exit(timeout=60.0) == 2
    (line,) = server.log().splitlines()
    assert line.startswith(
        "model_monitor: cannot serve the model: MONITOR_MODEL='fraud-detector': "
        "this bento was built to serve breast-cancer:"
    )


def test_the_tutorials_client_blocks_run_against_the_bento(
    built: tuple[Path, str, dict[str, Any]], tmp_path: Path, start_server: StartServer
) -> None:
    home, tag, data = built
    server = start_server(target=tag, home=home, cwd=tmp_path)
    blocks = served_blocks("server breast-cancer")
    outputs = {block.id: run_block(block, server.base_url) for block in blocks}

    # The README's curl and client, then the tutorial's client (on the test rows) and curl.
    assert [b.lang for b in blocks] == ["bash", "python", "python", "bash"], outputs.keys()
    readme_curl, readme_client, tutorial_client, tutorial_curl = outputs.values()
    for curl in (readme_curl, tutorial_curl):
        assert '"status":"matched"' in curl.replace(" ", "") and not ERROR_BODY.search(curl), curl
    assert "'matched': 3," in readme_client, readme_client
    assert f"'matched': {len(data['rows'])}, " in tutorial_client, tutorial_client
