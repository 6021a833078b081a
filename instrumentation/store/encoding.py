"""The one stored encoding every engine shares: prediction rows, aggregate cells, markers, counter.

**Rows.** A prediction is stored as the columns :data:`RECORD_COLUMNS`: scores, groups
and labels as JSON text (a class name and a number stay apart), so both engines store
the same text and read it back the same way.

**Cells.** The ``aggregates`` table holds ``(model, version, bucket, key) -> value``
rows (PostgreSQL adds a shard to the key and sums shards on read). Besides the
metric cells (keys from :func:`~instrumentation.store.keys.encode_key`, JSON arrays)
two kinds of rows share it, encoded identically in every engine:

- **Write markers.** Every transaction that adds cells to a (version, bucket) also
  adds a random amount (:func:`draw`) to that bucket's cell under :data:`MARKER_KEY`,
  a JSON string where every real key is a JSON array, so no cell is mistaken for a
  marker. A marker only grows while its bucket exists and moves with its cells in
  compaction, so the window cache (:mod:`.window_cache`) re-reads a bucket exactly
  when its marker changed. Markers are not cells: reads leave them out.
- **The stored-rows counter.** ``count_predictions`` reads one cell (version
  :data:`COUNTER_VERSION`, which no model has; bucket :data:`COUNTER_BUCKET`, after
  any time, so compaction never touches it) instead of counting rows: inserts add to
  it and eviction subtracts from it in their own transactions, so it is exact.
"""

from __future__ import annotations

import functools
import json
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from instrumentation.store.keys import encode_key
from instrumentation.store.protocol import Label, PredictionRecord, record_of

MARKER_KEY: Final = '"writes"'
"""The key of a bucket's write marker, in the cells of the version it marks."""

COUNTER_VERSION: Final = ""
COUNTER_BUCKET: Final = 2**62
COUNTER_KEY: Final = encode_key(("stored_predictions",))

Cell = tuple[str, int, str, float]
"""``(version, bucket, encoded key, amount)``."""

_random = random.SystemRandom()


def draw() -> float:
    """A fresh marker increment: a random whole number in ``[1, 2**30]``.

    A bucket dropped and written again between two reads of a cache could only come
    back with the very same marker value with probability at most ``2**-30``.
    """
    return float(_random.randint(1, 2**30))


def counter_cell(rows: int) -> Cell:
    """The counter increment of ``rows`` rows inserted (negative: deleted)."""
    return (COUNTER_VERSION, COUNTER_BUCKET, COUNTER_KEY, float(rows))


def marker_cells(cells: Iterable[Cell]) -> list[Cell]:
    """A fresh marker increment for each (version, bucket) among ``cells`` (counter aside)."""
    seen = {(version, bucket) for version, bucket, _, _ in cells if version != COUNTER_VERSION}
    return [(v, b, MARKER_KEY, draw()) for v, b in sorted(seen)]


def cells_to_write(cells: list[Cell], *, inserted: int = 0) -> list[Cell]:
    """``cells``, the counter increment of ``inserted`` rows (if any), and their markers."""
    if inserted:
        cells = [*cells, counter_cell(inserted)]
    return [*cells, *marker_cells(cells)]


RECORD_COLUMNS: Final = (
    "prediction_id",
    "version",
    "created",
    "label",
    "value",
    "scores",
    "groups",
    "trace_id",
    "span_id",
    "feedback",
    "feedback_at",
)
"""The stored columns of a prediction row, in the order :func:`record_rows` gives them."""

_GROUPS_TEXT: dict[tuple[tuple[str, str], ...], str] = {}
"""Encoded groups by their items: a service sees few distinct combinations (capped)."""

_GROUPS_TEXT_MAX: Final = 4096


def _groups_text(groups: Mapping[str, str]) -> str:
    items = tuple(groups.items())
    text = _GROUPS_TEXT.get(items)
    if text is None:
        if len(_GROUPS_TEXT) >= _GROUPS_TEXT_MAX:
            _GROUPS_TEXT.clear()
        text = _GROUPS_TEXT[items] = json.dumps(dict(groups), sort_keys=True)
    return text


_GROUPS_OF: dict[str, dict[str, str]] = {}


def _groups_of(text: str) -> dict[str, str]:
    """``json.loads`` of stored groups, parsed once per distinct text (a fresh dict each)."""
    groups = _GROUPS_OF.get(text)
    if groups is None:
        if len(_GROUPS_OF) >= _GROUPS_TEXT_MAX:
            _GROUPS_OF.clear()
        groups = _GROUPS_OF[text] = json.loads(text)
    return dict(groups)


def _scores_text(scores: tuple[float, ...]) -> str:
    """``json.dumps(list(scores))`` for finite floats (``repr`` is what it writes), faster."""
    if all(type(p) is float and math.isfinite(p) for p in scores):
        return "[" + ", ".join(map(repr, scores)) + "]"
    return json.dumps(list(scores))


def record_rows(records: Sequence[PredictionRecord]) -> list[tuple[Any, ...]]:
    """Each record as column values in :data:`RECORD_COLUMNS` order (JSON text for lists).

    Groups repeat across rows and are encoded once per distinct combination.
    """
    return [
        (
            r.prediction_id,
            r.version,
            r.created,
            r.label,
            r.value,
            _scores_text(r.scores) if r.scores is not None else None,
            _groups_text(r.groups),
            r.trace_id,
            r.span_id,
            encode_label(r.feedback) if r.feedback is not None else None,
            r.feedback_at,
        )
        for r in records
    ]


@functools.lru_cache(maxsize=4096, typed=True)
def encode_label(label: Label) -> str:
    """A label as stored: JSON, so a class name and a number stay apart.

    Cached: a classifier's labels are a few class names, each encoded once, not per label.
    """
    return json.dumps(label)


def records_from_rows(rows: Iterable[Sequence[Any]]) -> list[PredictionRecord]:
    """Inverse of :func:`record_rows`, for each row; the scores of all rows parsed at once.

    A feedback request reads a thousand rows: one parse of their joined score texts
    costs a fraction of a thousand parses.
    """
    rows = list(rows)
    texts = [row[5] for row in rows if row[5] is not None]
    parsed = iter(json.loads("[" + ",".join(texts) + "]") if texts else ())
    return [
        record_of(
            pid,
            version,
            created,
            label,
            value,
            tuple(next(parsed)) if scores is not None else None,
            _groups_of(groups),
            trace_id,
            span_id,
            json.loads(fb) if fb is not None else None,
            fb_at,
        )
        for (
            pid,
            version,
            created,
            label,
            value,
            scores,
            groups,
            trace_id,
            span_id,
            fb,
            fb_at,
        ) in rows
    ]
