"""promtool accepts the Prometheus configuration that deploy/docker-compose.yaml mounts.

Syntax only: its rule file and targets are paths and host names inside the compose
network (tests/unit/test_deploy_configs.py checks they match the compose file).
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from harness.serving import REPO

pytestmark = pytest.mark.e2e

CONFIG = REPO / "deploy" / "compose" / "prometheus.yml"


def test_promtool_accepts_the_compose_prometheus_config() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail(
            "promtool not found: `make services` installs Debian's prometheus", pytrace=False
        )
    result = subprocess.run(
        [promtool, "check", "config", "--syntax-only", str(CONFIG)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
