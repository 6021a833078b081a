"""How a stored prediction row is encoded, the same way in every store."""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from instrumentation.store.base import (
    Label,
    PredictionRecord,
)

logger = logging.getLogger(__name__)

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
"""The stored columns of a prediction row, in the order :func:`record_row` gives them."""


def record_row(r: PredictionRecord) -> tuple[Any, ...]:
    """A record as column values (JSON text for scores, groups and labels)."""
    return (
        r.prediction_id,
        r.version,
        r.created,
        r.label,
        r.value,
        json.dumps(list(r.scores)) if r.scores is not None else None,
        json.dumps(dict(r.groups), sort_keys=True),
        r.trace_id,
        r.span_id,
        encode_label(r.feedback) if r.feedback is not None else None,
        r.feedback_at,
    )


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
    """:func:`record_row` of each record (the same text), for a request's batch.

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
    """Inverse of :func:`record_row`, for each row; the scores of all rows parsed at once.

    A feedback request reads a thousand rows: one parse of their joined score texts
    costs a fraction of a thousand parses.
    """
    rows = list(rows)
    texts = [row[5] for row in rows if row[5] is not None]
    parsed = iter(json.loads("[" + ",".join(texts) + "]") if texts else ())
    return [
        PredictionRecord(
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
