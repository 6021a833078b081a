"""Docs that run: every Python and shell block of the README and the docs site.

An unmarked block runs as written, in a fresh process from the repository root with a
private ``BENTOML_HOME`` (the *your model* example saves into the model store);
``.venv/bin/`` means this interpreter's environment. A block marked ``syntax (why)`` is
parsed only; one marked ``server`` runs against a served model in the end-to-end tests
(``tests/docs_pages.py`` lists the markers).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs_pages import (
    EXECUTABLE,
    REPO,
    YOUR_MODEL_MARK,
    Block,
    all_blocks,
    blocks,
    pages,
    served_blocks,
    your_model_example,
)

BLOCKS = all_blocks()
EXECUTED = [b for b in BLOCKS if b.lang in EXECUTABLE]
MODES = {"run", "syntax", "server", "server breast-cancer"}
BIN = Path(sys.executable).parent


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MONITOR_", "OTEL_"))},
        "BENTOML_HOME": str(tmp_path / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "true",
        "PYTHONWARNINGS": "error::UserWarning",  # scikit-learn's feature-name warnings among them
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def test_the_docs_have_blocks_of_every_kind() -> None:
    modes = {b.mode for b in EXECUTED}
    assert {"run", "syntax", "server", "server breast-cancer"} <= modes, modes
    assert any(b.code.startswith(YOUR_MODEL_MARK) for b in blocks(REPO / "README.md"))


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.id)
def test_every_fence_names_its_language_and_every_marker_is_known(block: Block) -> None:
    assert block.lang, f"{block.id}: a fence without a language (text, json, bash, python…)"
    if block.lang in EXECUTABLE:
        assert block.mode in MODES, f"{block.id}: unknown marker {block.marker!r}"
    if block.mode == "syntax":
        assert block.reason, f"{block.id}: say why the block cannot run: syntax (why)"


def test_the_readme_saves_the_model_exactly_as_the_tutorial_does() -> None:
    (readme,) = (b.code for b in blocks(REPO / "README.md") if b.code.startswith(YOUR_MODEL_MARK))
    assert readme == your_model_example()


def test_blocks_that_need_a_server_have_one() -> None:
    # Run by tests/e2e/test_docs_served.py and tests/e2e/test_your_model.py.
    assert served_blocks("server") and served_blocks("server breast-cancer")


@pytest.mark.parametrize("block", [b for b in EXECUTED if b.mode == "syntax"], ids=lambda b: b.id)
def test_a_block_that_cannot_run_at_least_parses(block: Block) -> None:
    if block.lang == "python":
        compile(block.code, block.id, "exec")
        return
    done = subprocess.run(["bash", "-n"], input=block.code, capture_output=True, text=True)
    assert done.returncode == 0, f"{block.id}: {done.stderr}"


@pytest.mark.parametrize("block", [b for b in EXECUTED if b.mode == "run"], ids=lambda b: b.id)
def test_a_block_runs_as_written(block: Block, tmp_path: Path) -> None:
    if block.lang == "python":
        command = [sys.executable, "-c", block.code]
    else:
        command = ["bash", "-euo", "pipefail", "-c", block.code.replace(".venv/bin/", f"{BIN}/")]
    done = subprocess.run(
        command, cwd=REPO, env=_env(tmp_path), capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, f"{block.id}:\n{done.stdout}{done.stderr}"


NAMED_TESTS = sorted(
    {
        found
        for page in pages()
        for found in re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", page.read_text(encoding="utf-8"))
    }
)


def test_the_guarantees_name_tests() -> None:
    assert len(NAMED_TESTS) >= 40, "the Guarantees page lost its test references"


@pytest.mark.parametrize(("path", "function"), NAMED_TESTS, ids=lambda v: str(v))
def test_every_test_the_docs_name_exists(path: str, function: str) -> None:
    source = (REPO / path).read_text(encoding="utf-8")
    assert re.search(rf"^def {function}\(", source, re.M), f"{path}::{function} does not exist"
