"""Window sums that cost the buckets that changed, not the window (SQLite and PostgreSQL).

A window's sums are the sums of its buckets, and almost every bucket of a long
window is closed: summing a day of cells again on every ``GET /monitor`` (~140k
rows at a million predictions a day, ~100 ms) recomputes what the last call
already knew. :class:`WindowCache` keeps each bucket's cells in process and
re-reads only the buckets whose **write marker** changed.

Markers: every transaction that adds cells to a (version, bucket) also adds a
random amount in ``[1, 2**30]`` to that bucket's marker, a row of ``aggregates``
under the version ``MARKER_PREFIX + version`` (no real version starts with NUL),
so one bucket's marker is read without reading its cells. A marker only grows
while its bucket exists; compaction moves markers with the cells they mark
(merged into the span's bucket, which grows) or drops them with their bucket (the
bucket vanishes). So a cached bucket is current exactly when its marker is
unchanged, except when a bucket vanishes and is written again (a very late write,
e.g. a spool replay after compaction) to the very same marker value between two
reads of this cache: the new marker is a sum of fresh random draws, equal to the
old one with probability at most 2**-30.

Markers and cells are read in one read transaction (a :class:`Buckets` view), so
each cached bucket is exactly its marker's state. SQLite stores written before
markers existed get them for their data buckets the first time a process reads a
window (:func:`backfill`). PostgreSQL keeps its markers in cells of the version
itself (``key`` :data:`~instrumentation.store._postgres_counts.MARKER_KEY`, one per
shard, summed): text there cannot hold the NUL of SQLite's marker versions.
"""

from __future__ import annotations

import random
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Final, Protocol

import numpy as np
import numpy.typing as npt

from instrumentation.store.base import encode_key

MARKER_PREFIX: Final = "\x00writes\x00"
MARKER_KEY: Final = encode_key(("writes",))

PRUNE_EVERY: Final = 256
"""Calls between prunings of buckets that no window read in that many calls."""

_Bucket = tuple[float, npt.NDArray[np.int64], npt.NDArray[np.float64]]
"""A cached bucket: its marker, its cells' key indices and their values."""

_random = random.SystemRandom()


class Buckets(Protocol):
    """One version's buckets as one read transaction sees them."""

    def markers(self, since_bucket: int) -> dict[int, float]:
        """Each bucket ``>= since_bucket`` that holds cells, with its write marker."""

    def cells(self, buckets: list[int]) -> Iterable[tuple[int, str, float]]:
        """``(bucket, encoded key, value)`` of every cell (not marker) of ``buckets``."""


def draw() -> float:
    """A fresh marker increment: a random whole number in ``[1, 2**30]``."""
    return float(_random.randint(1, 2**30))


def markers(cells: Iterable[tuple[str, int, str, float]]) -> list[tuple[str, int, str, float]]:
    """Marker cells for every (version, bucket) among encoded ``cells``, each a fresh draw."""
    seen = {(version, bucket) for version, bucket, _, _ in cells}
    return [
        (MARKER_PREFIX + version, bucket, MARKER_KEY, draw()) for version, bucket in sorted(seen)
    ]


def backfill(cur: sqlite3.Cursor, model: str, version: str) -> None:
    """Give every data bucket of (model, version) without a marker one (inside a transaction)."""
    cur.execute(
        "INSERT INTO aggregates (model, version, bucket, key, value) "
        "SELECT ?, ?, bucket, ?, 1 FROM aggregates WHERE model=? AND version=? GROUP BY bucket "
        "ON CONFLICT (model, version, bucket, key) DO NOTHING",
        (model, MARKER_PREFIX + version, MARKER_KEY, model, version),
    )


def count_markers(cur: sqlite3.Cursor, model: str, condition: str, args: tuple[int, ...]) -> int:
    """Marker rows of ``model`` (every version) that meet ``condition`` on ``bucket``."""
    (count,) = cur.execute(
        f"SELECT COUNT(*) FROM aggregates WHERE model=? AND version>=? AND version<? "
        f"AND {condition}",
        (model, MARKER_PREFIX, MARKER_PREFIX[:-1] + "\x01", *args),
    ).fetchone()
    return int(count)


class _SQLiteBuckets:
    def __init__(self, conn: sqlite3.Connection, model: str, version: str) -> None:
        self._conn, self._model, self._version = conn, model, version

    def markers(self, since_bucket: int) -> dict[int, float]:
        return dict(
            self._conn.execute(
                "SELECT bucket, value FROM aggregates WHERE model=? AND version=? AND bucket>=?",
                (self._model, MARKER_PREFIX + self._version, since_bucket),
            ).fetchall()
        )

    def cells(self, buckets: list[int]) -> Iterator[tuple[int, str, float]]:
        for start in range(0, len(buckets), 500):
            chunk = buckets[start : start + 500]
            marks = ",".join("?" * len(chunk))
            yield from self._conn.execute(
                f"SELECT bucket, key, value FROM aggregates WHERE model=? AND version=? "
                f"AND bucket IN ({marks})",
                (self._model, self._version, *chunk),
            )


@contextmanager
def sqlite_buckets(conn: sqlite3.Connection, model: str, version: str) -> Iterator[Buckets]:
    """A version's buckets in one SQLite read transaction (``conn`` in autocommit mode)."""
    conn.execute("BEGIN")
    try:
        yield _SQLiteBuckets(conn, model, version)
    finally:
        conn.execute("COMMIT")


class WindowCache:
    """Per (model, version): each bucket's cells as numpy arrays, with the marker they match."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], dict[int, _Bucket]] = {}
        self._keys: dict[tuple[str, str], dict[str, int]] = {}
        self._used: dict[tuple[str, str], dict[int, int]] = {}
        self._calls = 0
        self.backfilled: set[tuple[str, str]] = set()
        self.reread = 0
        """Buckets read from the store since the start (tests and benchmarks read it)."""

    def sums(
        self,
        read: Callable[[], AbstractContextManager[Buckets]],
        model: str,
        version: str,
        since_bucket: int,
    ) -> dict[str, float]:
        """Every cell summed over buckets ``>= since_bucket``, reading only changed buckets.

        ``read`` opens one read transaction over ``(model, version)``'s buckets.
        """
        scope = (model, version)
        with self._lock:
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
            return self._total(scope, [cached[b] for b in sorted(current)])

    def _read(
        self,
        buckets: Buckets,
        scope: tuple[str, str],
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

    def _total(self, scope: tuple[str, str], buckets: list[_Bucket]) -> dict[str, float]:
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
