"""The library's version (the ``bentoml-model-monitor`` distribution's, as in pyproject.toml).

A module of its own so the telemetry scope can carry it without importing the
package's ``__init__`` (which imports the monitor).
"""

from __future__ import annotations

__version__ = "0.1.0"
