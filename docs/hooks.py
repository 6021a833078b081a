"""MkDocs hook: regenerate the reference pages from the code's tables before each build."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

_SPEC = importlib.util.spec_from_file_location(
    "gen_reference", Path(__file__).with_name("gen_reference.py")
)
assert _SPEC is not None and _SPEC.loader is not None  # a file beside this one
gen_reference = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(gen_reference)


def on_pre_build(config: Any) -> None:
    """Write the generated pages before MkDocs collects the files."""
    gen_reference.write_all()
