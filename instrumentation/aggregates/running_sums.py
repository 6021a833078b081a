"""Running sums of per-bucket cells, and every point's window read from them at once.

The numpy half of :mod:`instrumentation.aggregates.history`: a version's buckets
become a buckets × cells matrix of the charted cells, summed cumulatively once;
the window ``[t − window, t)`` of every point ``t`` is then the difference of two
of its rows, and so is each step's ``[t − step, t)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from instrumentation.aggregates.cells import Cells
from instrumentation.store.keys import decode_key

Floats = npt.NDArray[np.float64]

CHARTED_KINDS: Final = frozenset(
    {
        "predictions",
        "labels",
        "confusion",
        "regression",
        "estimate",
        "drift",
        "group_confusion",
        "group_regression",
    }
)
"""Cell kinds the history reads; the others (AUC, calibration, losses) are not charted."""

MAX_POINTS: Final = 5000
"""Most points one history returns (a week at two-minute steps is 5,041)."""

TOO_MANY_POINTS: Final = "the range holds {n} steps; at most {max} (widen step or narrow range)"
STEP_ERROR: Final = "step and window must be whole multiples of the bucket width ({width} s)"
RANGE_ERROR: Final = "from must be before to"


@dataclass(frozen=True)
class Span:
    """The points of a history: ``t = start, start + step, …, end`` and each window's width.

    ``rollup_after``: windows longer than it start at the next whole hour (as in the
    window report, whose old edge is hour buckets).
    """

    start: int
    end: int
    step: int
    window: int
    bucket_seconds: int
    rollup_after: float
    rollup_seconds: int

    def __post_init__(self) -> None:
        width = self.bucket_seconds
        if self.step % width or self.window % width or self.step <= 0 or self.window <= 0:
            raise ValueError(STEP_ERROR.format(width=width))
        if self.start > self.end:
            raise ValueError(RANGE_ERROR)
        n = (self.end - self.start) // self.step + 1
        if n > MAX_POINTS:
            raise ValueError(TOO_MANY_POINTS.format(n=n, max=MAX_POINTS))

    def times(self) -> npt.NDArray[np.int64]:
        """Each point's ``t``: the end of its window, oldest first."""
        return np.arange(self.start, self.end + 1, self.step, dtype=np.int64)

    def window_starts(self, t: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Where each point's window starts (rounded up to the hour past ``rollup_after``)."""
        since = t - self.window
        if self.window > self.rollup_after:
            hour = self.rollup_seconds
            since = -(-since // hour) * hour
        return since

    def first_bucket(self) -> int:
        """The oldest bucket any point reads."""
        t = self.times()
        return int(min(self.window_starts(t)[0], t[0] - self.step))


class RunningSums:
    """Running sums of the charted cells over one version's buckets, and their presence."""

    def __init__(self, buckets: Mapping[int, Mapping[str, float]]) -> None:
        columns: dict[str, int] = {}
        skipped: set[str] = set()  # keys of kinds not charted, decoded once
        starts = sorted(buckets)
        rows: list[int] = []
        cols: list[int] = []
        values: list[float] = []
        for row, bucket in enumerate(starts):
            for key, value in buckets[bucket].items():
                col = columns.get(key)
                if col is None:
                    if key in skipped:
                        continue
                    if decode_key(key)[0] not in CHARTED_KINDS:
                        skipped.add(key)
                        continue
                    col = columns[key] = len(columns)
                rows.append(row)
                cols.append(col)
                values.append(value)
        dense = np.zeros((len(starts), len(columns)))
        seen = np.zeros((len(starts), len(columns)))
        dense[rows, cols] = values
        seen[rows, cols] = 1.0
        self.starts = np.asarray(starts, dtype=np.int64)
        self.keys = [decode_key(key) for key in columns]
        zero = np.zeros((1, len(columns)))
        self._sums = np.concatenate([zero, np.cumsum(dense, axis=0)])
        self._seen = np.concatenate([zero, np.cumsum(seen, axis=0)])

    def between(
        self, since: npt.NDArray[np.int64], until: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """Each row's cells summed over buckets starting in ``[since, until)``, and which occur."""
        lo = np.searchsorted(self.starts, since, side="left")
        hi = np.searchsorted(self.starts, until, side="left")
        return self._sums[hi] - self._sums[lo], (self._seen[hi] - self._seen[lo]) > 0

    def column(self, *key: str) -> int | None:
        """The column of one cell, None when no bucket holds it."""
        try:
            return self.keys.index(key)
        except ValueError:
            return None


class Windows:
    """Each point's window sums, read by cell key (a cell no bucket holds reads as 0)."""

    def __init__(self, sums: RunningSums, span: Span) -> None:
        t = span.times()
        self.times: list[int] = t.tolist()
        self.sums, self.present = sums.between(span.window_starts(t), t)
        self.steps, _ = sums.between(t - span.step, t)
        self._index = {key: i for i, key in enumerate(sums.keys)}
        self.keys = sums.keys

    def column(self, *key: str, counts: bool = False, per_step: bool = False) -> Floats:
        """One cell's sum in each point's window (or step), rounded for a counting cell."""
        i = self._index.get(key)
        if i is None:
            return np.zeros(len(self.times))
        found = (self.steps if per_step else self.sums)[:, i]
        return np.round(found) if counts else found

    def seen(self, *key: str) -> npt.NDArray[np.bool_]:
        """Whether any bucket of each point's window holds the cell (``GET /monitor`` lists it)."""
        i = self._index.get(key)
        return self.present[:, i] if i is not None else np.zeros(len(self.times), dtype=bool)

    def confusion(self, classes: tuple[str, ...], *prefix: str) -> Floats:
        """Confusion counts (points × K × K) from cells ``(*prefix, actual, predicted)``."""
        return np.stack(
            [
                np.stack([self.column(*prefix, a, p, counts=True) for p in classes], axis=1)
                for a in classes
            ],
            axis=1,
        )

    def cells(self, i: int) -> Cells:
        """One point's window as :class:`Cells` (for the figures computed point by point)."""
        row = self.sums[i].tolist()
        present = np.flatnonzero(self.present[i]).tolist()
        return Cells.decoded((self.keys[j], row[j]) for j in present)
