"""Independent implementations the tests compare with, where one cannot be a plain dependency.

``make test`` builds them (``make oracles``) and sets ``MONITOR_TEST_ORACLES=required``:
there, a missing oracle fails its tests instead of skipping them, so CI never passes a
comparison it did not make. Elsewhere (``pytest`` on a machine without them) they skip.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

REQUIRED_ENV = "MONITOR_TEST_ORACLES"


def oracle(module: str) -> ModuleType:
    """``module``, imported; skipped when missing unless oracles are required."""
    if os.environ.get(REQUIRED_ENV) == "required":
        try:
            return importlib.import_module(module)
        except ImportError as exc:
            pytest.fail(f"oracle {module} is required ({REQUIRED_ENV}=required) but: {exc}")
    return pytest.importorskip(module)
