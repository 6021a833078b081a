"""Group caps, decided the same way by every engine: which group values a batch may keep.

Each sensitive attribute admits at most ``max_group_values`` distinct values per model,
first come first admitted, permanently; a value outside the cap is stored as
:data:`OVERFLOW_GROUP`, so metric attributes stay low-cardinality. Engines admit new
values (atomically with the rows) in the order :func:`group_pairs` gives, then apply
:func:`with_capped_groups` to each record.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import replace
from typing import Final

from instrumentation.metrics import fairness
from instrumentation.store.protocol import PredictionRecord

# Re-exported: the store maps group values to these two reserved buckets.
MISSING_GROUP: Final = fairness.MISSING_GROUP
OVERFLOW_GROUP: Final = fairness.OVERFLOW_GROUP

GroupPair = tuple[str, str]
"""``(attribute, value)``."""


def group_pairs(records: Sequence[PredictionRecord]) -> list[GroupPair]:
    """Every ``(attribute, value)`` a batch names, once, in order; reserved values left out.

    First come, first admitted: stores admit new values in this order until the cap.
    """
    pairs: dict[GroupPair, None] = {}
    for record in records:
        for attribute, value in record.groups.items():
            if value not in (MISSING_GROUP, OVERFLOW_GROUP):
                pairs[(attribute, value)] = None
    return list(pairs)


def with_capped_groups(
    record: PredictionRecord, admitted: Container[GroupPair]
) -> PredictionRecord:
    """``record`` with each group value not ``admitted`` moved to the overflow bucket."""
    groups = {
        attribute: (
            value
            if value in (MISSING_GROUP, OVERFLOW_GROUP) or (attribute, value) in admitted
            else OVERFLOW_GROUP
        )
        for attribute, value in record.groups.items()
    }
    return record if groups == dict(record.groups) else replace(record, groups=groups)


def capped(
    records: Sequence[PredictionRecord], admitted: Container[GroupPair]
) -> list[PredictionRecord]:
    """:func:`with_capped_groups` of each record."""
    return [with_capped_groups(r, admitted) for r in records]
