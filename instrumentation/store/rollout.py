"""Cells kept since a rollout began: cumulative per version, and a snapshot per new version.

A rollout lasts days, longer than buckets are kept, so a comparison over every label
since it began cannot be summed from buckets. Two kinds of model-wide cells keep it,
stored as the stored-rows counter is (version :data:`~.encoding.COUNTER_VERSION`, which
no model has, and bucket :data:`~.encoding.COUNTER_BUCKET`, after any time): no window
read, ``bucket_cells`` or ``versions_with_data`` sees them, compaction never touches
them, and no write marker is added for them.

- ``("cumulative", version, *key)``: the label transaction adds a label's comparison
  cells (``aggregates/`` chooses which) here as well as to its label-time bucket, as
  ordinary cells of the same upsert: exact, atomic with the label.
- ``("snapshot", candidate, version, *key)``, ``("snapshot_at", candidate)``: when a
  version is first recorded (``register_version``), every other version's cumulative
  cells are copied, in that transaction, with the time they were taken.

A baseline's cells since the candidate's rollout began are then its cumulative cells
now minus that snapshot (:func:`since_rollout`); the candidate's are all of its own.
Stores written before these cells existed start them at the upgrade: no migration.

>>> cells = {encode_key(cumulative_key("v1", ("labels",))): 5.0}
>>> snap = dict((key, value) for _, _, key, value in snapshot_cells("v2", cells, taken_at=9.0))
>>> cells.update({k: v for k, v in snap.items()})
>>> cells[encode_key(cumulative_key("v1", ("labels",)))] += 3.0
>>> since_rollout(cells, "v2", "v1")
({'["labels"]': 3.0}, 9.0)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from instrumentation.store.encoding import COUNTER_BUCKET, COUNTER_KEY, COUNTER_VERSION, Cell
from instrumentation.store.keys import AggregateKey, decode_key, encode_key
from instrumentation.store.protocol import Increments

CUMULATIVE: Final = "cumulative"
SNAPSHOT: Final = "snapshot"
SNAPSHOT_AT: Final = "snapshot_at"

MODEL_VERSION: Final = COUNTER_VERSION
"""The version model-wide cells are stored under (no model has it)."""

MODEL_BUCKET: Final = COUNTER_BUCKET
"""The bucket model-wide cells are stored in (after any time: compaction never reaches it)."""


def cumulative_key(version: str, key: AggregateKey) -> AggregateKey:
    """The model-wide key that accumulates ``version``'s cell ``key`` over every label."""
    return (CUMULATIVE, version, *key)


def add_cumulative(
    out: Increments, cells: Increments, *, keep: Callable[[AggregateKey], bool]
) -> None:
    """Add to ``out`` every cell of ``cells`` whose key ``keep`` takes, accumulated model-wide.

    ``cells`` are a label transaction's per-version cells (model-wide ones are skipped).
    """
    for (version, _, key), amount in cells.cells.items():
        if version != MODEL_VERSION and keep(key):
            out.add(MODEL_VERSION, MODEL_BUCKET, cumulative_key(version, key), amount)


def is_model_cell(key: str) -> bool:
    """Whether an encoded model-wide key is a rollout cell (not the stored-rows counter)."""
    return key != COUNTER_KEY


def snapshot_cells(candidate: str, cells: Mapping[str, float], *, taken_at: float) -> list[Cell]:
    """The cells recording, as ``candidate`` is first recorded, every other version's totals."""
    at = encode_key((SNAPSHOT_AT, candidate))
    out: list[Cell] = [(MODEL_VERSION, MODEL_BUCKET, at, taken_at)]
    for text, value in cells.items():
        if not is_model_cell(text):
            continue
        key = decode_key(text)
        if key[0] == CUMULATIVE and key[1] != candidate and value:
            snapshot = encode_key((SNAPSHOT, candidate, *key[1:]))
            out.append((MODEL_VERSION, MODEL_BUCKET, snapshot, value))
    return out


def since_rollout(
    cells: Mapping[str, float], candidate: str, version: str
) -> tuple[dict[str, float], float | None]:
    """``version``'s cells (encoded keys) since ``candidate`` was recorded, and when that was.

    ``cells`` are the model-wide cells (``PredictionStore.cumulative_cells``). For the
    candidate itself, every one of its labels. Without a snapshot (the candidate was
    recorded before the store kept them) the totals since the upgrade, and ``None``.
    """
    totals: dict[AggregateKey, float] = {}
    taken_at = None
    for text, value in cells.items():
        if not is_model_cell(text):
            continue
        key = decode_key(text)
        if key == (SNAPSHOT_AT, candidate):
            taken_at = value
        elif key[:2] == (CUMULATIVE, version):
            totals[key[2:]] = totals.get(key[2:], 0.0) + value
        elif key[:3] == (SNAPSHOT, candidate, version) and version != candidate:
            totals[key[3:]] = totals.get(key[3:], 0.0) - value
    return {encode_key(key): value for key, value in totals.items()}, taken_at


__all__ = [
    "MODEL_BUCKET",
    "add_cumulative",
    "MODEL_VERSION",
    "cumulative_key",
    "is_model_cell",
    "since_rollout",
    "snapshot_cells",
]
