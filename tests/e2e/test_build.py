"""``bentoml build`` from the repository root, then ``bentoml serve <tag>`` serves the bento."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from harness.otlp import OTLPReceiver, wait_for
from harness.serving import REPO, clean_environ, copy_home
from instrumentation import ModelSpec
from instrumentation.metrics.drift import PSI_EPSILON
from instrumentation.metrics.reference import ReferenceProfile
from service.model_store import SPEC_FILE
from service.train import train

from .conftest import StartServer
from .traffic import MODEL, expected_psi, ok_json, otlp_env, predict_body

pytestmark = pytest.mark.e2e


def untracked(repo: Path) -> set[str]:
    """Untracked and ignored paths of the working tree (``git status``)."""
    out = subprocess.run(
        ["git", "status", "--porcelain", "--ignored", "--untracked-files=all"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {line[3:] for line in out.splitlines() if line[:2] in ("??", "!!")}


def test_build_then_serve_by_tag(
    tmp_path: Path, trained_home: Path, start_server: StartServer, receiver: OTLPReceiver
) -> None:
    home = copy_home(trained_home, tmp_path)
    env = {**clean_environ(), "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true"}
    before = untracked(REPO)
    build = subprocess.run(
        [sys.executable, "-m", "bentoml", "build", "-o", "tag"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    match = re.search(r"__tag__:(\S+)", build.stdout)
    assert match, build.stdout
    tag = match.group(1)
    assert tag.startswith("model-monitor:")
    # The build wrote only into BENTOML_HOME (tests/ is excluded: other suites write there;
    # so are virtualenvs, where bentoml installs uv on first build if it is missing).
    left = {p for p in untracked(REPO) - before if not p.startswith(("tests/", ".venv"))}
    assert not left, f"bentoml build left files in the repository: {sorted(left)}"

    version = (home / "models" / MODEL / "latest").read_text().strip()
    stored_spec = (home / "models" / MODEL / version / SPEC_FILE).read_bytes()

    # What ships: `bentoml export` packs the bento with the models it references (the
    # built bento itself only names them by tag). Its monitor spec is the store's, byte
    # for byte, and is exactly what training builds (training is deterministic).
    archive = tmp_path / "model-monitor.bento"
    bentoml(env, "export", tag, str(archive), cwd=tmp_path)
    with tarfile.open(archive) as bento:
        specs = [m for m in bento.getmembers() if m.name.endswith(f"/{SPEC_FILE}")]
        assert [m.name.removeprefix("./") for m in specs] == [
            f"models/{MODEL}/{version}/{SPEC_FILE}"
        ]
        shipped_file = bento.extractfile(specs[0])
        assert shipped_file is not None
        shipped = shipped_file.read()
    assert shipped == stored_spec
    spec = ModelSpec.from_dict(json.loads(shipped))
    _, trained = train(MODEL)
    assert spec == trained
    profile = ReferenceProfile.from_dict(spec.reference)
    assert profile == ReferenceProfile.from_dict(trained.reference)
    assert profile.to_dict() == spec.reference
    assert set(profile.features) == {f.name for f in spec.features}

    # Import into an empty BENTOML_HOME and serve from elsewhere: the code and the
    # model (spec and reference profile included) can only come from the archive.
    imported = tmp_path / "imported-home"
    imported.mkdir()
    bentoml({**env, "BENTOML_HOME": str(imported)}, "import", str(archive), cwd=tmp_path)
    assert (imported / "models" / MODEL / version / SPEC_FILE).read_bytes() == stored_spec
    server = start_server(
        otlp_env(receiver, interval_ms=500), target=tag, home=imported, cwd=tmp_path
    )
    request = predict_body(3, seed=800)
    with server.client() as client:
        body = ok_json(client.post("/predict", json=request))
        snapshot = ok_json(client.get("/monitor"))
        # The page ships in the bento, its chart library included (nothing from a CDN).
        page = client.get("/ui")
        chart_library = client.get("/ui/assets/vendor/uPlot.iife.min.js")
    assert page.status_code == 200 and "/ui/assets/app.js" in page.text
    assert chart_library.status_code == 200 and len(chart_library.content) > 10_000
    assert body["model"] == {"name": MODEL, "version": version}
    assert len(body["predictions"]) == 3

    # The bento traces: its ml.predict span lists the ids it answered with.
    ids = [p["prediction_id"] for p in body["predictions"]]
    wait_for(
        lambda: (
            ids in [span_ids(span) for _, span in receiver.spans() if span.name == "ml.predict"]
        ),
        timeout=20.0,
        message="no ml.predict span from the bento",
    )

    # The served drift figures are computed against the shipped reference profile.
    drift = snapshot["windows"]["5m"]["drift"]["features"]
    assert set(drift) == set(profile.features)
    for feature, reference in spec.reference["features"].items():
        values = [item["features"][feature] for item in request["instances"]]
        assert drift[feature]["psi"]["n"] == 3
        assert drift[feature]["psi"]["value"] == pytest.approx(
            expected_psi(reference, values, epsilon=PSI_EPSILON), abs=1e-9
        ), feature


def bentoml(env: dict[str, str], *args: str, cwd: Path) -> None:
    """Run a ``bentoml`` command in ``cwd``; fail with its output."""
    done = subprocess.run(
        [sys.executable, "-m", "bentoml", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def span_ids(span: Any) -> list[str]:
    """The ``ml.prediction.ids`` attribute of an exported span (empty when it has none)."""
    for attribute in span.attributes:
        if attribute.key == "ml.prediction.ids":
            return [v.string_value for v in attribute.value.array_value.values]
    return []
