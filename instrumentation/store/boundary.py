"""The engine boundary: a driver's errors become the store's own, as they leave the engine.

Each engine decorates the public methods of its facade with a :func:`translating`
decorator built from its own classification, so callers only ever see
:mod:`instrumentation.errors` (the driver's error as ``__cause__``), as httpx's
transports map their drivers' errors with ``map_exceptions``::

    errors = translating(drivers=(sqlite3.Error,), unavailable=is_unavailable)

    class SQLiteStore:
        @errors
        def count_predictions(self, model: str) -> int: ...
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from instrumentation.errors import StoreError, StoreUnavailable

P = ParamSpec("P")
R = TypeVar("R")


def translating(
    *, drivers: tuple[type[BaseException], ...], unavailable: Callable[[BaseException], bool]
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A decorator raising the store's errors for the ``drivers``' ones.

    Args:
        drivers: the driver's error classes (anything else passes untouched: a
            :class:`StoreError` raised by the engine, an aggregator's own error).
        unavailable: whether a driver error means "cannot work now"
            (:class:`StoreUnavailable`) rather than a bug or bad data (:class:`StoreError`).
    """

    def decorate(method: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(method)
        def translated(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return method(*args, **kwargs)
            except drivers as exc:
                kind = StoreUnavailable if unavailable(exc) else StoreError
                raise kind(str(exc)) from exc

        return translated

    return decorate
