"""Reading and writing additive cells: the vocabulary every report section shares."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping

import numpy as np
import numpy.typing as npt

from instrumentation.store.keys import decode_key
from instrumentation.store.protocol import Increments


class CellWriter:
    """Adds to cells of one (model version, bucket): ``w.add("confusion", "a", "b")``."""

    def __init__(self, increments: Increments, version: str, bucket: int) -> None:
        self._increments = increments
        self._version = version
        self._bucket = bucket

    def add(self, *key: str, amount: float = 1.0) -> None:
        """Add ``amount`` to the cell named by ``key``."""
        self._increments.add(self._version, self._bucket, key, amount)


class SummingWriter(CellWriter):
    """A :class:`CellWriter` that sums in a local dict, for a batch of rows.

    Adding to a dict costs a fraction of :meth:`Increments.add` (key tuple, finiteness
    check); :meth:`flush` checks each distinct cell once.
    """

    def __init__(self, version: str, bucket: int) -> None:
        super().__init__(Increments(), version, bucket)
        self._sums: dict[tuple[str, ...], float] = {}

    def add(self, *key: str, amount: float = 1.0) -> None:
        """Add ``amount`` to the cell named by ``key``."""
        sums = self._sums
        sums[key] = sums.get(key, 0.0) + amount

    def flush(self, out: Increments) -> bool:
        """Add the sums to ``out``; False (and nothing added) if any is not finite."""
        if not all(map(math.isfinite, self._sums.values())):
            return False
        for key, amount in self._sums.items():
            out.add(self._version, self._bucket, key, amount)
        return True


class Cells:
    """A window's summed cells, grouped by their first key part (the cell kind)."""

    def __init__(self, sums: Mapping[str, float]) -> None:
        self._kinds: dict[str, dict[tuple[str, ...], float]] = defaultdict(dict)
        for text, value in sums.items():
            kind, *rest = decode_key(text)
            self._kinds[kind][tuple(rest)] = value

    @classmethod
    def decoded(cls, items: Iterable[tuple[tuple[str, ...], float]]) -> Cells:
        """Cells from already decoded ``(key, sum)`` pairs (a history builds one per point)."""
        cells = cls({})
        for (kind, *rest), value in items:
            cells._kinds[kind][tuple(rest)] = value
        return cells

    def get(self, kind: str, *rest: str) -> float:
        """One cell's sum (0 when never written)."""
        return self._kinds.get(kind, {}).get(rest, 0.0)

    def count(self, kind: str, *rest: str) -> int:
        """One counting cell as an integer."""
        return int(round(self.get(kind, *rest)))

    def items(self, kind: str) -> Iterator[tuple[tuple[str, ...], float]]:
        """Every cell of a kind, as (key parts after the kind, sum)."""
        yield from self._kinds.get(kind, {}).items()

    def matrix(self, kind: str, classes: tuple[str, ...], *prefix: str) -> npt.NDArray[np.float64]:
        """A K×K confusion matrix from cells ``(kind, *prefix, actual, predicted)``."""
        return self._matrices(kind, classes, prefix, named=False).get((), _square(classes))

    def matrices(
        self, kind: str, classes: tuple[str, ...], *prefix: str
    ) -> dict[str, npt.NDArray[np.float64]]:
        """:meth:`matrix` of every ``name`` in cells ``(kind, *prefix, name, actual, predicted)``.

        One pass over the kind's cells, by sorted name: a matrix per group would scan
        them once per group, quadratic in the number of groups.
        """
        found = self._matrices(kind, classes, prefix, named=True)
        return {name: found[(name,)] for (name,) in sorted(found)}

    def _matrices(
        self, kind: str, classes: tuple[str, ...], prefix: tuple[str, ...], *, named: bool
    ) -> dict[tuple[str, ...], npt.NDArray[np.float64]]:
        """Confusion matrices by the key parts between ``prefix`` and (actual, predicted)."""
        index = {c: i for i, c in enumerate(classes)}
        found: dict[tuple[str, ...], npt.NDArray[np.float64]] = {}
        width = len(prefix)
        for rest, value in self.items(kind):
            if rest[:width] == prefix and len(rest) == width + named + 2:
                *name, actual, predicted = rest[width:]
                matrix = found.setdefault(tuple(name), _square(classes))
                if actual in index and predicted in index:
                    matrix[index[actual], index[predicted]] = round(value)
        return found

    def histogram(self, kind: str, size: int, *prefix: str) -> npt.NDArray[np.float64]:
        """Bin counts from cells ``(kind, *prefix, bin)``."""
        counts = np.zeros(size)
        width = len(prefix)
        for rest, value in self.items(kind):
            if rest[:width] == prefix and len(rest) == width + 1:
                counts[int(rest[width])] = round(value)
        return counts


def _square(classes: tuple[str, ...]) -> npt.NDArray[np.float64]:
    return np.zeros((len(classes), len(classes)))
