"""The environment table: each variable read has an entry, each entry is read, README agrees."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk import environment_variables

from instrumentation import MonitorConfig, OTLPSettings
from instrumentation.environment import LIBRARY_VARIABLES, Variable
from service.settings import VARIABLES, load_settings

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
VARIABLE_NAME = re.compile(r"(MONITOR|OTEL)_[A-Z0-9_]+")


class RecordingEnv(Mapping[str, str]):
    """An empty environment that remembers every variable asked for."""

    def __init__(self) -> None:
        self.asked: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return default

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def _read_by(reader: Callable[[Mapping[str, str]], object]) -> set[str]:
    env = RecordingEnv()
    reader(env)
    return env.asked


def _ours(variables: tuple[Variable, ...]) -> set[str]:
    return {v.name for v in variables if not v.read_by_sdk}


def test_names_are_unique() -> None:
    names = [v.name for v in VARIABLES]
    assert len(names) == len(set(names))


def test_the_library_reads_exactly_its_entries() -> None:
    asked = _read_by(MonitorConfig.from_env) | _read_by(OTLPSettings.from_env)

    assert asked == _ours(LIBRARY_VARIABLES)


def test_the_service_reads_exactly_the_table() -> None:
    assert _read_by(load_settings) == _ours(VARIABLES)


def test_variables_the_sdk_reads_are_the_sdks() -> None:
    sdk = {v.name for v in VARIABLES if v.read_by_sdk}
    assert sdk <= {v for v in vars(environment_variables).values() if isinstance(v, str)}


def _literal_names(path: Path) -> list[str]:
    """Variable names spelt as a string literal, except as a ``Variable(...)`` entry's name."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    declared = {
        id(node.args[0])
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "Variable"
        and node.args
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and VARIABLE_NAME.fullmatch(node.value)
        and id(node) not in declared
    ]


def test_no_variable_is_read_by_a_literal_name() -> None:
    spelt = {
        f"{path.relative_to(REPO)}: {name}"
        for package in ("instrumentation", "service")
        for path in (REPO / package).rglob("*.py")
        for name in _literal_names(path)
    }
    assert not spelt, sorted(spelt)


def _readme_rows() -> dict[str, tuple[str, str]]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([A-Z0-9_]+)` \| (.*?) \| (.*) \|$", section, re.M)
    return {name: (default, meaning) for name, default, meaning in rows}


def readme_row(variable: Variable) -> str:
    """The README's row for ``variable`` (regenerate the table with these)."""
    default = variable.shown or f"`{variable.default}`"
    return f"| `{variable.name}` | {default} | {variable.meaning} |"


@pytest.mark.parametrize("variable", VARIABLES, ids=lambda v: v.name)
def test_the_readme_row_is_the_tables(variable: Variable) -> None:
    rows = _readme_rows()
    assert variable.name in rows, f"README.md lacks: {readme_row(variable)}"
    default, meaning = rows[variable.name]
    assert f"| `{variable.name}` | {default} | {meaning} |" == readme_row(variable)


def test_the_readme_documents_no_other_variable() -> None:
    assert set(_readme_rows()) == {v.name for v in VARIABLES}
