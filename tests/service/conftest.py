"""In-process API tests: the BentoML service as an ASGI app under Starlette's TestClient.

``service.service`` resolves its model, worker count and tracing at import, so the
session fixture sets the environment first and imports the module once.

The ASGI app is built once per session too: BentoML's traffic middleware registers its
Prometheus histograms in a process-global registry, so a second ``to_asgi()`` app fails
with ``DuplicateTimeseries``. The app creates a new ``ModelService`` instance at every
lifespan startup, so each test's ``TestClient(app)`` context still gets a fresh service
on its own SQLite store. The instance reads its settings from the environment when it
is constructed (``service.settings.load_settings``), so per-test settings are variables.
"""

from __future__ import annotations

import importlib
import os
import sys
import types
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from service_roundtrip import service_env
from starlette.exceptions import StarletteDeprecationWarning

from instrumentation import SQLiteStore

with warnings.catch_warnings():
    # starlette 1.x prefers the `httpx2` fork; plain httpx still works and is what we have.
    warnings.filterwarnings(
        "ignore",
        message=r"Using `httpx` with `starlette.testclient` is deprecated",
        category=StarletteDeprecationWarning,
    )
    from starlette.testclient import TestClient


@pytest.fixture(scope="session")
def service_module(
    trained_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[types.ModuleType]:
    """``service.service``, imported once with the fraud-detector model and a clean env."""
    if "service.service" in sys.modules:
        pytest.fail("service.service was imported before its environment was set")
    env = service_env(trained_home, tmp_path_factory.mktemp("import"), model="fraud-detector")
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith(("MONITOR_", "OTEL_")):
                patch.delenv(name)
        for name, value in env.items():
            patch.setenv(name, value)
        with warnings.catch_warnings():
            # Import-time deprecations inside BentoML that pyproject's module filters miss:
            # they are attributed to pathspec and to _bentoml_sdk, not to bentoml.*.
            warnings.filterwarnings(
                "ignore",
                message=r"GitWildMatchPattern \('gitwildmatch'\) is deprecated",
                category=DeprecationWarning,
                module=r"pathspec\.",
            )
            warnings.filterwarnings(
                "ignore",
                message=r"The `__get_pydantic_core_schema__` method of the `BaseModel` class",
                category=DeprecationWarning,
                module=r"_bentoml_sdk\.",
            )
            module = importlib.import_module("service.service")
        yield module


@pytest.fixture(scope="session")
def asgi_app(service_module: types.ModuleType) -> Any:
    """The service's ASGI app, built once (see the module docstring)."""
    return service_module.ModelService.to_asgi()


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


@pytest.fixture
def make_client(
    service_module: types.ModuleType,
    asgi_app: Any,
    store_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[..., TestClient]]:
    """Start the service on this test's store; keyword arguments are ``MONITOR_*`` variables.

    ``make_client(MONITOR_MAX_BATCH="5")`` starts an instance whose settings read that.
    """
    with ExitStack() as stack:

        def make(**variables: str) -> TestClient:
            monkeypatch.setenv("MONITOR_STORE_URL", f"sqlite:///{store_path}")
            for name, value in variables.items():
                monkeypatch.setenv(name, value)
            return stack.enter_context(TestClient(asgi_app))

        yield make


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


@pytest.fixture
def store(store_path: Path) -> Iterator[SQLiteStore]:
    """A second connection to the service's store, to check what was (not) written."""
    sqlite = SQLiteStore(store_path)
    yield sqlite
    sqlite.close()
