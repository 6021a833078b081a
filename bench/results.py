"""``bench/RESULTS.md``: generated sections between markers, hand-written text kept."""

from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:begin (generated) -->", f"<!-- {name}:end -->"


def replace_section(name: str, text: str, path: Path = RESULTS) -> None:
    """Put ``text`` between the ``name`` markers of ``path``; append the markers if absent."""
    begin, end = _markers(name)
    block = f"{begin}\n{text.strip()}\n{end}"
    old = path.read_text() if path.exists() else ""
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.DOTALL)
    if pattern.search(old):
        new = pattern.sub(lambda _: block, old)
    else:
        new = f"{old.rstrip()}\n\n{block}\n" if old.strip() else f"{block}\n"
    path.write_text(new)
