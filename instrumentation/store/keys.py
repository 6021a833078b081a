"""The text form of an aggregate cell's key, the same in every engine.

A key is a tuple of strings, e.g. ``("confusion", "fraud", "legit")``; stored as its
JSON array, so any characters are allowed in its parts and every real key starts with
``[`` (the write marker's key, a JSON string, never does: see :mod:`.encoding`).

>>> encode_key(("confusion", "fraud", "legit"))
'["confusion","fraud","legit"]'
>>> decode_key('["labels"]')
('labels',)
"""

from __future__ import annotations

import functools
import json

AggregateKey = tuple[str, ...]
"""An aggregate cell, e.g. ``("confusion", "fraud", "legit")``; values are additive floats."""


@functools.lru_cache(maxsize=65536)
def encode_key(key: AggregateKey) -> str:
    """Unambiguous text form of an aggregate key (any characters allowed in parts)."""
    return json.dumps(key, separators=(",", ":"), ensure_ascii=False)


@functools.lru_cache(maxsize=65536)
def decode_key(text: str) -> AggregateKey:
    """Inverse of :func:`encode_key` (cached: every report decodes the same few thousand keys)."""
    return tuple(json.loads(text))
