"""The docs' blocks that need a served model run against one: the demo model, 2 workers.

Each block marked ``<!-- docs-test: server -->`` runs as written from the repository root,
its ``127.0.0.1:3000`` (and ``:3001``, a second replica of the same store) pointed at a
fresh server and its ``.venv/bin/`` at this interpreter's; a shell block's answers must
hold no error, and its label must join.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.serving import REPO, clean_environ
from tests.docs_pages import Block, for_server, served_blocks

from .conftest import StartServer

pytestmark = pytest.mark.e2e

ERROR_BODY = re.compile(r'"error":\s*"')
"""An error answer (``{"error": "…"}``); ``GET /monitor``'s ``estimated.error`` is an object."""


def run_block(block: Block, base_url: str) -> str:
    """Run ``block`` against the server at ``base_url``; its output."""
    bin_dir = Path(sys.executable).parent  # the docs' .venv/bin/
    code = for_server(block.code, base_url).replace(".venv/bin/", f"{bin_dir}/")
    env = {**clean_environ(), "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    # No pipefail: `… | head` closes the pipe early on purpose.
    command = (
        [sys.executable, "-c", code] if block.lang == "python" else ["bash", "-eu", "-c", code]
    )
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"{block.id}:\n{done.stdout}{done.stderr}"
    return done.stdout


@pytest.mark.parametrize("block", served_blocks("server"), ids=lambda b: b.id)
def test_a_block_that_needs_a_server_runs_against_one(
    block: Block, start_server: StartServer
) -> None:
    server = start_server()
    out = run_block(block, server.base_url)
    assert not ERROR_BODY.search(out), f"{block.id}:\n{out}"
    if block.lang == "bash":
        assert '"matched"' in out, f"{block.id}: the label did not join its prediction:\n{out}"
