"""Prediction stores: where predictions wait for labels and additive aggregates accumulate."""

from __future__ import annotations

from instrumentation.config import StoreURL
from instrumentation.store.base import PredictionStore
from instrumentation.store.sqlite import SQLiteStore


def open_store(url: StoreURL) -> PredictionStore:
    """The store a ``MONITOR_STORE_URL`` names."""
    return SQLiteStore(url.path)


__all__ = ["PredictionStore", "SQLiteStore", "open_store"]
