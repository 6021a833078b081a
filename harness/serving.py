"""Run ``bentoml serve`` as a child process group: for the demo, benchmarks and e2e tests.

Each server gets its own port on 127.0.0.1, its own SQLite store and log file
under a working directory, and its own process group so that stopping it reaches
every worker. Give concurrent servers separate BENTOML_HOMEs (``copy_home``):
BentoML's Prometheus multiprocess files would otherwise collide.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

import httpx

from harness.processes import ChildProcess, free_port, http_ok
from service import SERVICE_NAME

REPO = Path(__file__).resolve().parents[1]
SERVICE = "service.service:ModelService"

__all__ = ["REPO", "SERVICE", "Server", "clean_environ", "copy_home", "free_port"]


def clean_environ() -> dict[str, str]:
    """This process's environment without MONITOR_*, OTEL_* or BENTOML_* settings."""
    return {
        k: v for k, v in os.environ.items() if not k.startswith(("MONITOR_", "OTEL_", "BENTOML_"))
    }


def copy_home(trained_home: Path, workdir: Path) -> Path:
    """A private copy of a BENTOML_HOME (models included) under ``workdir``."""
    home = workdir / "bentoml-home"
    shutil.copytree(trained_home, home)
    return home


class Server(ChildProcess):
    """One ``bentoml serve`` process group; use as a context manager or call :meth:`stop`.

    Args:
        workdir: a directory of its own (home copy, store, log).
        trained_home: a BENTOML_HOME holding the models; copied into ``workdir``.
        env: extra environment (MONITOR_*, OTEL_*), applied last.
        target: what to serve (the service import path, or a bento tag).
        home: use this BENTOML_HOME as it is instead of copying ``trained_home``.
        cwd: working directory (default: the repository root, as ``bentoml serve`` expects).
    """

    def __init__(
        self,
        workdir: Path,
        trained_home: Path,
        env: Mapping[str, str] | None = None,
        *,
        target: str = SERVICE,
        home: Path | None = None,
        cwd: Path | None = None,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.home = home if home is not None else copy_home(trained_home, workdir)
        self.store_path = workdir / "store.db"
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._readyz = http_ok(f"{self.base_url}/readyz")
        super().__init__(
            "server",
            [
                sys.executable,
                *("-m", "bentoml", "serve", target),
                *("--host", "127.0.0.1", "-p", str(self.port)),
            ],
            workdir,
            self._every_worker_ready,
            env={
                **clean_environ(),
                "BENTOML_HOME": str(self.home),
                "BENTOML_DO_NOT_TRACK": "true",
                "MONITOR_STORE_URL": f"sqlite:///{self.store_path}",
                "MONITOR_WORKERS": "2",
                **(env or {}),
            },
            cwd=cwd if cwd is not None else REPO,
        )

    def _every_worker_ready(self) -> bool:
        """``/readyz`` answers as soon as one worker does; wait for every worker's start-up.

        Each worker logs ``Service … initialized`` once its ``__init__`` (model, store,
        telemetry, scrape endpoint) is done.
        """
        workers = int((self.env or {}).get("MONITOR_WORKERS", "1"))
        started = self.log().count(f"Service {SERVICE_NAME} initialized")
        return started >= workers and self._readyz()

    def client(self, timeout: float = 30.0) -> httpx.Client:
        """An HTTP client for this server (close it, or use it as a context manager)."""
        return httpx.Client(base_url=self.base_url, timeout=timeout)
