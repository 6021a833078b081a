"""A bad setting stops ``bentoml serve`` at start-up with one line naming the variable."""

from __future__ import annotations

import pytest

from .conftest import StartServer

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MONITOR_WINDOWS", "5x"),
        ("MONITOR_TRACE_SAMPLE_RATE", "2"),
        ("MONITOR_PROMETHEUS_PORT", "metrics"),
    ],
)
def test_bad_config_fails_at_start_up(start_server: StartServer, variable: str, value: str) -> None:
    server = start_server({variable: value}, wait=False)
    code = server.wait_exit(timeout=30.0)
    assert code == 2
    (line,) = server.log().splitlines()  # no import traceback around it
    assert line.startswith(f"model_monitor: bad configuration: {variable}={value!r}: expected")
