"""Docs that run: every Python block of the README executes as written.

Each block runs in a fresh interpreter from the repository root, with a private
BENTOML_HOME: the *your model* example saves into the model store.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_the_readme_has_python_examples() -> None:
    assert BLOCKS, "README.md lost its Python examples"
    assert any(block.startswith("# your-model example") for block in BLOCKS)


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_python_block_runs(code: str, tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MONITOR_", "OTEL_"))},
        "BENTOML_HOME": str(tmp_path / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "true",
        "PYTHONWARNINGS": "error::UserWarning",  # scikit-learn's feature-name warnings among them
    }
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


NAMED_TESTS = sorted(
    set(re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", README.read_text(encoding="utf-8")))
)


def test_the_guarantees_name_tests() -> None:
    assert len(NAMED_TESTS) >= 40, "README's Guarantees section lost its test references"


@pytest.mark.parametrize(("path", "function"), NAMED_TESTS, ids=lambda v: str(v))
def test_every_test_the_readme_names_exists(path: str, function: str) -> None:
    source = (REPO / path).read_text(encoding="utf-8")
    assert re.search(rf"^def {function}\(", source, re.M), f"{path}::{function} does not exist"
