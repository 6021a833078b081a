"""Arrows run one way: the template and the library import nothing from the tools around them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

MAY_NOT_IMPORT = {
    "instrumentation": ("service", "demo", "harness", "tests", "bench"),
    "service": ("demo", "harness", "tests", "bench"),
    "harness": ("demo", "tests", "bench"),
    "demo": ("tests", "bench"),
    "bench": ("tests", "demo"),
}
"""Each top-level package, and the packages it must not import."""


def _imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(MAY_NOT_IMPORT))
def test_a_package_imports_nothing_it_must_not(package: str) -> None:
    wrong = {
        f"{path.relative_to(REPO)} imports {root}"
        for path in (REPO / package).rglob("*.py")
        for root in _imported_roots(path) & set(MAY_NOT_IMPORT[package])
    }
    assert not wrong, sorted(wrong)
