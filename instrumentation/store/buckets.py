"""Time buckets: aggregate cells are kept per bucket, keyed by the bucket's start.

>>> bucket_of(1_700_000_059.9), bucket_of(1_700_000_060.0)
(1700000040, 1700000100)
"""

from __future__ import annotations

from typing import Final

DEFAULT_BUCKET_SECONDS: Final = 60
"""Default width of one aggregate time bucket (``MONITOR_BUCKET_SECONDS``)."""


def bucket_of(timestamp: float, width: int = DEFAULT_BUCKET_SECONDS) -> int:
    """Start (whole seconds since the epoch) of the ``width``-second bucket holding ``timestamp``.

    Buckets are keyed by their start time, not an index, so a store keeps meaning
    the same thing if the bucket width is changed between runs.
    """
    return int(timestamp // width) * width
