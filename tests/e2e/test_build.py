"""``bentoml build`` from the repository root, then ``bentoml serve <tag>`` serves the bento."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from service.serving import REPO, clean_environ, copy_home

from .conftest import StartServer
from .traffic import MODEL, ok_json, predict_body

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
    tmp_path: Path, trained_home: Path, start_server: StartServer
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

    # Serve from elsewhere, so the code can only come from the bento.
    server = start_server(target=tag, home=home, cwd=tmp_path)
    with server.client() as client:
        body = ok_json(client.post("/predict", json=predict_body(3, seed=800)))
    version = (home / "models" / MODEL / "latest").read_text().strip()
    assert body["model"] == {"name": MODEL, "version": version}
    assert len(body["predictions"]) == 3
