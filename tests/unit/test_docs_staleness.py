"""The docs stay true to the tree, the schemas and the benchmark results.

Three kinds of staleness, each checked where the docs state a fact the code also holds:
a path in backticks exists and the repository tree lists every module; a response
example marked ``<!-- shape: Model -->`` is exactly that model of ``service/schemas.py``
(every field, no other); a figure quoted from ``bench/RESULTS.md`` is still its figure.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from pydantic import BaseModel

from service import schemas
from tests.docs_pages import REPO, Block, all_blocks, blocks, pages

TOP_LEVEL = ("service", "instrumentation", "demo", "harness", "tests", "bench", "deploy", "docs")
RESULTS = REPO / "bench" / "RESULTS.md"
PATH_SPAN = re.compile(rf"`((?:{'|'.join(TOP_LEVEL)})/[\w./-]*?)(?:::\w+)?`")


def _paths() -> list[tuple[str, str]]:
    found = []
    for page in pages():
        for path in PATH_SPAN.findall(page.read_text(encoding="utf-8")):
            found.append((str(page.relative_to(REPO)), path))
    return sorted(set(found))


@pytest.mark.parametrize(("page", "path"), _paths(), ids=lambda v: str(v))
def test_every_path_the_docs_name_exists(page: str, path: str) -> None:
    assert (REPO / path).exists(), f"{page} names `{path}`, which is not in the tree"


def _file_list() -> Block:
    (block,) = [b for b in all_blocks() if b.marker == "<!-- file-list -->"]
    return block


def _listed(block: Block) -> dict[str, set[str]]:
    """Top-level directory → the names its lines in the tree mention."""
    listed: dict[str, set[str]] = {}
    top = ""
    for line in block.code.splitlines():
        if line and not line[0].isspace():
            top = line.split("/", 1)[0]
        listed.setdefault(top, set()).update(re.findall(r"[\w.]+\.py|[\w]+/", line))
    return listed


@pytest.mark.parametrize("top", ["service", "instrumentation"])
def test_the_repository_tree_lists_every_module_and_folder(top: str) -> None:
    listed = _listed(_file_list())[top]
    here = {
        p.name if p.is_file() else f"{p.name}/"
        for p in (REPO / top).iterdir()
        if (p.suffix == ".py" and p.name != "__init__.py")
        or (p.is_dir() and not p.name.startswith((".", "__")) and p.name != "vendor")
    }
    assert here - listed == set(), f"the tree in {_file_list().id} leaves out {here - listed}"


def test_every_module_the_tree_names_exists() -> None:
    for top, named in _listed(_file_list()).items():
        for name in (n for n in named if n.endswith(".py")):
            assert list((REPO / top).rglob(name)), f"{top}/…/{name} is not in the tree"


SHAPES = [b for b in all_blocks() if b.marker.startswith("<!-- shape:")]


def test_the_http_reference_shows_every_body() -> None:
    models = {b.marker.removeprefix("<!-- shape: ").removesuffix(" -->") for b in SHAPES}
    assert models >= {"PredictRequest", "PredictResponse", "FeedbackRequest", "FeedbackResponse"}


def _fields_missing(model: type[BaseModel], value: Any, where: str) -> list[str]:
    """Every field of ``model`` (nested models included) absent from ``value``, and extras."""
    problems = [f"{where}: {name} missing" for name in model.model_fields if name not in value]
    problems += [f"{where}: {name} is no field" for name in value if name not in model.model_fields]
    for name, field in model.model_fields.items():
        inner = field.annotation
        args = getattr(inner, "__args__", ())
        nested = next(
            (a for a in (inner, *args) if isinstance(a, type) and issubclass(a, BaseModel)), None
        )
        if nested is None or name not in value:
            continue
        items = value[name] if isinstance(value[name], list) else [value[name]]
        for i, item in enumerate(items):
            problems += _fields_missing(nested, item, f"{where}.{name}[{i}]")
    return problems


@pytest.mark.parametrize("block", SHAPES, ids=lambda b: b.id)
def test_a_documented_body_is_exactly_its_schema(block: Block) -> None:
    model: type[BaseModel] = getattr(schemas, block.marker.split()[2])
    body = json.loads(block.code)

    model.model_validate(body)
    assert _fields_missing(model, body, model.__name__) == []


def _results_table() -> dict[str, str]:
    text = RESULTS.read_text(encoding="utf-8")
    table = text.split("<!-- targets:begin", 1)[1].split("<!-- targets:end", 1)[0]
    return {name: value for name, value in re.findall(r"^\| (.+?) \| (.+?) \|", table, re.M)}


def _quoted_rows() -> list[tuple[str, str, str]]:
    figures = _results_table()
    rows = []
    for page in pages():
        for name, value in re.findall(
            r"^\| (.+?) \| (.+?) \|$", page.read_text(encoding="utf-8"), re.M
        ):
            if name in figures:
                rows.append((str(page.relative_to(REPO)), name, value))
    return rows


def test_the_costs_page_quotes_the_results() -> None:
    quoted = {name for page, name, _ in _quoted_rows() if page == "docs/explanation/costs.md"}
    assert len(quoted) >= 10, quoted


@pytest.mark.parametrize(("page", "name", "value"), _quoted_rows(), ids=lambda v: str(v))
def test_a_figure_quoted_from_the_results_is_still_theirs(page: str, name: str, value: str) -> None:
    assert value == _results_table()[name], f"{page}: {name} is {_results_table()[name]} now"


def _quotes() -> list[tuple[str, str]]:
    quotes = []
    for page in pages():
        text = page.read_text(encoding="utf-8")
        for quote in re.findall(r"<!-- quoted from bench/RESULTS.md -->\n((?:> .*\n)+)", text):
            quotes.append((str(page.relative_to(REPO)), quote))
    return quotes


def _words(text: str) -> str:
    return " ".join(text.replace("> ", " ").split())


def test_there_are_quotes_to_check() -> None:
    assert _quotes()


@pytest.mark.parametrize(("page", "quote"), _quotes(), ids=lambda v: str(v)[:40])
def test_a_quote_from_the_results_is_still_in_them(page: str, quote: str) -> None:
    assert _words(quote) in _words(RESULTS.read_text(encoding="utf-8")), f"{page}: {quote}"


def test_the_readme_is_one_screen_and_a_picture() -> None:
    readme = REPO / "README.md"
    assert len(readme.read_text(encoding="utf-8").splitlines()) <= 150
    assert "docs/images/monitoring-page.png" in readme.read_text(encoding="utf-8")
    assert [b for b in blocks(readme) if b.lang == "python"]


def test_the_readmes_links_into_the_docs_resolve() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    for target in re.findall(r"\]\(((?!http)[^)#]+)", text):
        assert (REPO / target).exists(), target
