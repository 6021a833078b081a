"""The one shape every computed figure takes: a value with its sample count and interval."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class MetricValue:
    """A metric figure as exported and shown by ``GET /monitor``.

    ``value`` is ``None`` where the metric is undefined (empty window, zero
    denominator that the reference library reports as undefined): never a fake 0.
    ``n`` is the number of samples the figure rests on. ``lower``/``upper`` bound
    the figure where an interval applies (Wilson for rates), else ``None``.

    >>> MetricValue(0.5, n=4, lower=0.15, upper=0.85).to_dict()["n"]
    4
    """

    value: float | None
    n: int
    lower: float | None = None
    upper: float | None = None

    def __post_init__(self) -> None:
        if self.value is not None and math.isnan(self.value):
            raise ValueError("MetricValue.value must be a number or None, not NaN")

    @classmethod
    def undefined(cls, n: int = 0) -> MetricValue:
        """A figure that cannot be computed from ``n`` samples."""
        return cls(None, n)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"value", "n", "lower", "upper"}``."""
        return {"value": self.value, "n": self.n, "lower": self.lower, "upper": self.upper}
