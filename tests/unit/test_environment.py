"""The environment table: each variable read has an entry, each entry is read, the docs agree."""

from __future__ import annotations

import ast
import importlib.util
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
GENERATOR = REPO / "docs" / "gen_reference.py"
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


def _configuration_page() -> str:
    """The docs' *Configuration* page as ``docs/gen_reference.py`` writes it."""
    spec = importlib.util.spec_from_file_location("gen_reference", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    page: str = module.configuration_page()
    return page


def _page_rows() -> dict[str, tuple[str, str]]:
    section = _configuration_page()
    rows = re.findall(r"^\| `([A-Z0-9_]+)` \| (.*?) \| (.*) \|$", section, re.M)
    return {name: (default, meaning) for name, default, meaning in rows}


@pytest.mark.parametrize("variable", VARIABLES, ids=lambda v: v.name)
def test_the_configuration_page_shows_the_tables_default(variable: Variable) -> None:
    rows = _page_rows()
    assert variable.name in rows, f"the configuration page lacks {variable.name}"
    default, meaning = rows[variable.name]
    assert default == (variable.shown or f"`{variable.default}`")
    assert meaning.split("(")[0].strip() in " ".join(variable.meaning.split())


def test_the_configuration_page_documents_no_other_variable() -> None:
    assert set(_page_rows()) == {v.name for v in VARIABLES}
