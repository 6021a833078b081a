"""Fixtures shared by every test layer."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def trained_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BENTOML_HOME holding the three demo models, trained once per test session.

    Tests that serve must copy or reuse it read-only; anything that writes (store,
    Prometheus multiprocess files) goes to the test's own directories.
    """
    home = tmp_path_factory.mktemp("bentoml-home")
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true"}
    subprocess.run(
        [sys.executable, "-m", "service.train"], cwd=REPO, env=env, check=True, capture_output=True
    )
    return home


@pytest.fixture
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """Clear MONITOR_* and OTEL_* variables so no test inherits another's configuration."""
    for name in list(os.environ):
        if name.startswith(("MONITOR_", "OTEL_")):
            monkeypatch.delenv(name)
    yield tmp_path
