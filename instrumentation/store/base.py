"""The names modules outside the store import, from where they now live (nothing defined here).

New code imports from the module that defines a name: :mod:`.protocol` (the contract,
records, errors), :mod:`.keys` (the key codec), :mod:`.buckets` (bucket math),
:mod:`.groups` (the reserved group values).
"""

from __future__ import annotations

from instrumentation.store.buckets import DEFAULT_BUCKET_SECONDS, bucket_of
from instrumentation.store.groups import MISSING_GROUP, OVERFLOW_GROUP
from instrumentation.store.keys import AggregateKey, decode_key, encode_key
from instrumentation.store.protocol import (
    FEEDBACK_STATUSES,
    DuplicatePredictionId,
    FeedbackStatus,
    Increments,
    Label,
    LabelAggregator,
    LabelOutcome,
    PredictionRecord,
    PredictionStore,
    StoreError,
    StoreUnavailable,
    VersionInfo,
)

__all__ = [
    "DEFAULT_BUCKET_SECONDS",
    "FEEDBACK_STATUSES",
    "MISSING_GROUP",
    "OVERFLOW_GROUP",
    "AggregateKey",
    "DuplicatePredictionId",
    "FeedbackStatus",
    "Increments",
    "Label",
    "LabelAggregator",
    "LabelOutcome",
    "PredictionRecord",
    "PredictionStore",
    "StoreError",
    "StoreUnavailable",
    "VersionInfo",
    "bucket_of",
    "decode_key",
    "encode_key",
]
