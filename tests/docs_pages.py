"""The docs as data, for the tests that run and check them: pages, fenced blocks, markers.

A page is ``README.md``, ``CONTRIBUTING.md`` or any Markdown file under ``docs/`` (the
generated reference pages included once written). A fenced block may be preceded by a
marker comment that says how the tests treat it:

- none: ``python`` and ``bash`` blocks run as written (``tests/unit/test_docs_blocks.py``);
- ``<!-- docs-test: server -->``: runs against a served demo model
  (``tests/e2e/test_docs_served.py``); ``server breast-cancer``: against the bento of the
  *your model* tutorial (``tests/e2e/test_your_model.py``);
- ``<!-- docs-test: syntax (why) -->``: parsed only (installs, serves until stopped,
  needs Docker…), with the reason in parentheses;
- ``<!-- shape: Model -->`` before a ``json`` block: validated against
  ``service/schemas.py``; ``<!-- file-list -->``: a repository tree checked against the
  files; ``<!-- quoted from bench/RESULTS.md -->`` before a quote: must appear there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
EXECUTABLE = frozenset({"python", "bash"})
"""Languages whose blocks a test runs; every other fence shows text, output or data."""

_FENCE = re.compile(
    r"(?:^(?P<marker><!--[^\n]*-->)\n)?^```(?P<lang>[\w-]*)\n(?P<code>.*?)^```$", re.M | re.S
)


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its language, its code and the marker before it."""

    page: Path
    line: int
    lang: str
    code: str
    marker: str

    @property
    def id(self) -> str:
        """``page:line``, for test ids and messages."""
        return f"{self.page.relative_to(REPO)}:{self.line}"

    @property
    def mode(self) -> str:
        """``run``, ``server``, ``server breast-cancer``, ``syntax`` or another marker's text."""
        match = re.fullmatch(r"<!-- docs-test: (.*?)(?: \((.+)\))? -->", self.marker)
        if not self.marker or not self.marker.startswith("<!-- docs-test:"):
            return "run"
        return match.group(1) if match else "malformed"

    @property
    def reason(self) -> str | None:
        """The parenthesised reason of a ``syntax`` marker."""
        match = re.fullmatch(r"<!-- docs-test: .*? \((.+)\) -->", self.marker)
        return match.group(1) if match else None


EXCERPT_PAGES = frozenset({DOCS / "writing-a-store-engine.md"})
"""Pages whose blocks are excerpts of larger files (an ``elif`` without its ``if``), owned
by the code they describe: linked from the site, not run. Their names still are checked."""


def pages() -> list[Path]:
    """Every page of the docs: the README, CONTRIBUTING.md and ``docs/**/*.md``."""
    return [REPO / "README.md", REPO / "CONTRIBUTING.md", *sorted(DOCS.rglob("*.md"))]


def blocks(page: Path) -> list[Block]:
    """Every fenced block of ``page``, in order."""
    text = page.read_text(encoding="utf-8")
    return [
        Block(
            page,
            text.count("\n", 0, m.start("lang")) + 1,
            m.group("lang"),
            m.group("code"),
            (m.group("marker") or "").strip(),
        )
        for m in _FENCE.finditer(text)
    ]


def all_blocks() -> list[Block]:
    """Every fenced block of every page but the excerpt pages'."""
    return [block for page in pages() if page not in EXCERPT_PAGES for block in blocks(page)]


def served_blocks(mode: str) -> list[Block]:
    """The executable blocks marked to run against a served model (``mode``)."""
    return [b for b in all_blocks() if b.lang in EXECUTABLE and b.mode == mode]


def for_server(code: str, base_url: str) -> str:
    """``code`` with the docs' servers (``localhost`` or ``127.0.0.1``, ports 3000 and 3001,
    two replicas of one store) pointed at the one at ``base_url``."""
    host = base_url.removeprefix("http://")
    return re.sub(r"(?:localhost|127\.0\.0\.1):300[01]", host, code)


YOUR_MODEL_TUTORIAL = DOCS / "tutorials" / "your-model.md"
YOUR_MODEL_MARK = "# your-model example"


def your_model_example() -> str:
    """The tutorial's block that saves the breast-cancer model (the README repeats it)."""
    (code,) = (b.code for b in blocks(YOUR_MODEL_TUTORIAL) if b.code.startswith(YOUR_MODEL_MARK))
    return code
