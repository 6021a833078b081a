"""Window sums that cost the buckets that changed, not the window (every engine).

A window's sums are the sums of its buckets, and almost every bucket of a long
window is closed: summing a day of cells again on every ``GET /monitor`` (~140k
rows at a million predictions a day, ~100 ms) recomputes what the last call
already knew. :class:`WindowCache` keeps each bucket's cells in process and
re-reads only the buckets whose write marker changed (markers: see
:mod:`~instrumentation.store.encoding`).

A cached bucket is current exactly when its marker is unchanged: a marker only
grows while its bucket exists, moves with its cells in compaction, and vanishes
with its bucket. Markers and cells are read in one read transaction (a
:class:`Buckets` view an engine opens), so each cached bucket is exactly its
marker's state.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import Final, Protocol

import numpy as np
import numpy.typing as npt

PRUNE_EVERY: Final = 256
"""Calls between prunings of buckets that no window read in that many calls."""

_Bucket = tuple[float, npt.NDArray[np.int64], npt.NDArray[np.float64]]
"""A cached bucket: its marker, its cells' key indices and their values."""

_Scope = tuple[str, str]


class Buckets(Protocol):
    """One version's buckets as one read transaction sees them (an engine implements it)."""

    def markers(self, since_bucket: int) -> dict[int, float]:
        """Each bucket ``>= since_bucket`` that holds cells, with its write marker."""

    def cells(self, buckets: list[int]) -> Iterable[tuple[int, str, float]]:
        """``(bucket, encoded key, value)`` of every cell (not marker) of ``buckets``."""


Reader = Callable[[], AbstractContextManager[Buckets]]
"""Opens one read transaction over a (model, version)'s buckets."""


class WindowCache:
    """Per (model, version): each bucket's cells as numpy arrays, with the marker they match."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[_Scope, dict[int, _Bucket]] = {}
        self._keys: dict[_Scope, dict[str, int]] = {}
        self._used: dict[_Scope, dict[int, int]] = {}
        self._calls = 0
        self.reread = 0
        """Buckets read from the store since the start (tests and benchmarks read it)."""

    def sums(self, read: Reader, model: str, version: str, since_bucket: int) -> dict[str, float]:
        """Every cell summed over buckets ``>= since_bucket``, reading only changed buckets."""
        scope = (model, version)
        with self._lock:
            current = self._refresh(read, scope, since_bucket)
            cached = self._buckets[scope]
            return self._total(scope, [cached[b] for b in sorted(current)])

    def bucket_cells(
        self, read: Reader, model: str, version: str, since_bucket: int, until_bucket: int | None
    ) -> dict[int, dict[str, float]]:
        """Each bucket's cells in ``[since_bucket, until_bucket)``, reading only changed buckets."""
        scope = (model, version)
        with self._lock:
            current = self._refresh(read, scope, since_bucket)
            cached, names = self._buckets[scope], list(self._keys.get(scope, {}))
            found: dict[int, dict[str, float]] = {}
            for bucket in sorted(current):
                if until_bucket is not None and bucket >= until_bucket:
                    break
                _, indices, values = cached[bucket]
                if len(indices):
                    keys = [names[i] for i in indices.tolist()]
                    found[bucket] = dict(zip(keys, values.tolist(), strict=True))
            return found

    def _refresh(self, read: Reader, scope: _Scope, since_bucket: int) -> dict[int, float]:
        """Bring the cached buckets ``>= since_bucket`` up to date; their current markers."""
        with read() as buckets:  # markers and cells from one snapshot
            current = buckets.markers(since_bucket)
            cached = self._buckets.setdefault(scope, {})
            stale = [b for b, m in current.items() if b not in cached or cached[b][0] != m]
            if stale:
                self._read(buckets, scope, stale, current, cached)
        for bucket in [b for b in cached if b >= since_bucket and b not in current]:
            del cached[bucket]  # vanished: rolled up or dropped
        self._calls += 1
        used = self._used.setdefault(scope, {})
        used.update(dict.fromkeys(current, self._calls))
        if self._calls % PRUNE_EVERY == 0:  # buckets no window has read for a while
            for bucket in [b for b, at in used.items() if at < self._calls - PRUNE_EVERY]:
                cached.pop(bucket, None)
                del used[bucket]
        return current

    def _read(
        self,
        buckets: Buckets,
        scope: _Scope,
        stale: list[int],
        current: dict[int, float],
        cached: dict[int, _Bucket],
    ) -> None:
        keys = self._keys.setdefault(scope, {})
        found: dict[int, tuple[list[int], list[float]]] = {b: ([], []) for b in stale}
        for bucket, key, value in buckets.cells(stale):
            index = keys.setdefault(key, len(keys))
            found[bucket][0].append(index)
            found[bucket][1].append(value)
        for bucket, (indices, values) in found.items():
            cached[bucket] = (
                current[bucket],
                np.asarray(indices, dtype=np.int64),
                np.asarray(values, dtype=np.float64),
            )
        self.reread += len(stale)

    def _total(self, scope: _Scope, buckets: list[_Bucket]) -> dict[str, float]:
        """Per-key sums, added bucket by bucket in time order."""
        if not buckets:
            return {}
        keys = self._keys[scope]
        indices = np.concatenate([b[1] for b in buckets])
        values = np.concatenate([b[2] for b in buckets])
        totals = np.bincount(indices, weights=values, minlength=len(keys))
        present = np.bincount(indices, minlength=len(keys)) > 0
        names = list(keys)
        return {names[i]: float(totals[i]) for i in np.flatnonzero(present).tolist()}
