"""Fixtures for end-to-end tests: real ``bentoml serve`` processes and an OTLP receiver."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Mapping
from pathlib import Path

import pytest

from harness.otlp import OTLPReceiver
from harness.processes import ChildProcess
from harness.serving import SERVICE, Server

StartServer = Callable[..., Server]

SKLEARN_NAME_WARNINGS = (
    "error:X does not have valid feature names:UserWarning,error:X has feature names:UserWarning"
)
"""Served models must get the columns they were fitted with: scikit-learn's warnings fail."""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failing e2e test shows the log tail of every server still running: CI keeps no files."""
    report = yield
    if report.failed:
        for process in ChildProcess.running():
            title = f"{process.name} log ({process.log_path})"
            report.sections.append((title, process.log_tail(80)))
    return report


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    """A fresh OTLP/gRPC receiver on 127.0.0.1 for one test."""
    with OTLPReceiver() as sink:
        yield sink


@pytest.fixture
def start_server(tmp_path: Path, trained_home: Path) -> Iterator[StartServer]:
    """Start isolated servers for one test; every one is stopped at teardown, pass or fail.

    ``start_server(env, wait=True, target=SERVICE, home=None, cwd=None)``.
    """
    servers: list[Server] = []

    def start(
        env: Mapping[str, str] | None = None,
        *,
        wait: bool = True,
        target: str = SERVICE,
        home: Path | None = None,
        cwd: Path | None = None,
    ) -> Server:
        workdir = tmp_path / f"server-{len(servers)}"
        env = {"PYTHONWARNINGS": SKLEARN_NAME_WARNINGS, **(env or {})}
        server = Server(workdir, trained_home, env, target=target, home=home, cwd=cwd)
        servers.append(server)
        server.start()
        if wait:
            server.wait_ready()
        return server

    yield start
    for server in servers:
        server.stop()
