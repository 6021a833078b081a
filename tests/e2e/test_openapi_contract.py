"""``/docs.json`` is a contract: ``schemathesis run``, every phase and every check, finds nothing.

The same command a user would run against a real ``bentoml serve``: the examples,
coverage and fuzzing phases over every operation the document declares (``/predict``,
``/feedback``, ``/monitor``, ``/monitor/history``, ``/ui`` and BentoML's own), with
``--checks all`` and the repository's ``schemathesis.toml``, plus two checks of ours
(:mod:`e2e.openapi_checks`). What it found before the document said what the service
does, and must not find again: a ``multipart/form-data`` type without a boundary
answered 500; ``{"instances": []}`` valid by the schema yet refused; error bodies that
were not the declared shape; most schema-valid bodies refused; a ``from`` of 1e300
on the history answered 500.

``MONITOR_MAX_BATCH`` is small so that the coverage phase's bodies at and past
``maxItems`` stay small. Bounded by :data:`MAX_EXAMPLES` (fuzzing, per operation and
mode; the coverage phase is a fixed set): ~40 s on two shared cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from harness.serving import REPO

from .conftest import StartServer

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = 100
MAX_BATCH = 8
CLI_TIMEOUT_S = 400
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


def test_schemathesis_finds_nothing_with_every_phase_and_check(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = start_server({"MONITOR_WORKERS": "1", "MONITOR_MAX_BATCH": str(MAX_BATCH)})
    command = [
        str(SCHEMATHESIS),
        *("--config-file", str(REPO / "schemathesis.toml")),
        "run",
        *("--checks", "all"),
        *("--phases", "examples,coverage,fuzzing"),
        *("--max-examples", str(MAX_EXAMPLES)),
        "--continue-on-failure",
        "--no-color",
        f"{server.base_url}/docs.json",
    ]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), str(REPO)]),
        "SCHEMATHESIS_HOOKS": "e2e.openapi_checks",
    }
    run = subprocess.run(
        command,
        cwd=tmp_path,  # no .hypothesis/ or report files in the worktree
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
    )

    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
    assert "No issues found" in run.stdout, run.stdout[-5000:]
    paths = httpx.get(f"{server.base_url}/docs.json").json()["paths"]
    assert {"/monitor", "/monitor/history", "/ui"} <= paths.keys()
    operations = sum(len(item) for item in paths.values())
    assert f"Tested: {operations}\n" in run.stdout, run.stdout[-5000:]  # every one of them
