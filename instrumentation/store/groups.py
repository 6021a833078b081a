"""Group caps, decided the same way by every engine: which group values a batch may keep.

Each sensitive attribute admits at most ``max_group_values`` distinct values per model,
first come first admitted, permanently; a value outside the cap is stored as
:data:`OVERFLOW_GROUP`, so metric attributes stay low-cardinality. Engines admit new
values (atomically with the rows) in the order :func:`group_pairs` gives, then apply
:func:`with_capped_groups` to each record.
"""

from __future__ import annotations

from collections.abc import Collection, Container, Sequence
from dataclasses import replace
from itertools import chain
from typing import Final

from instrumentation.metrics import fairness
from instrumentation.store.protocol import PredictionRecord

# Re-exported: the store maps group values to these two reserved buckets.
MISSING_GROUP: Final = fairness.MISSING_GROUP
OVERFLOW_GROUP: Final = fairness.OVERFLOW_GROUP
_RESERVED: Final = (MISSING_GROUP, OVERFLOW_GROUP)

GroupPair = tuple[str, str]
"""``(attribute, value)``."""


def group_pairs(records: Sequence[PredictionRecord]) -> list[GroupPair]:
    """Every ``(attribute, value)`` a batch names, once, in order; reserved values left out.

    First come, first admitted: stores admit new values in this order until the cap.
    """
    # dict.fromkeys over the chained items: the dedupe runs in C, not a loop per row.
    seen = dict.fromkeys(chain.from_iterable(record.groups.items() for record in records))
    return [pair for pair in seen if pair[1] not in _RESERVED]


def with_capped_groups(
    record: PredictionRecord, admitted: Container[GroupPair]
) -> PredictionRecord:
    """``record`` with each group value not ``admitted`` moved to the overflow bucket."""
    groups = {
        attribute: (
            value if value in _RESERVED or (attribute, value) in admitted else OVERFLOW_GROUP
        )
        for attribute, value in record.groups.items()
    }
    return record if groups == dict(record.groups) else replace(record, groups=groups)


def capped(
    records: Sequence[PredictionRecord],
    admitted: Collection[GroupPair],
    pairs: Sequence[GroupPair],
) -> list[PredictionRecord]:
    """:func:`with_capped_groups` of each record; ``pairs`` are the batch's :func:`group_pairs`.

    When every pair is admitted (nearly always, once a service has seen its groups)
    the records are returned as they are, without a pass over each record's groups.
    """
    if all(pair in admitted for pair in pairs):
        return list(records)
    return [with_capped_groups(r, admitted) for r in records]
