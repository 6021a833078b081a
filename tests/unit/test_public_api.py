"""The public surface of ``instrumentation`` is pinned, and the library stays framework-free."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import instrumentation

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "instrumentation"
FORBIDDEN_IMPORTS = ("bentoml", "_bentoml_impl", "_bentoml_sdk")
GLOBAL_SETTERS = {"set_tracer_provider", "set_meter_provider", "set_logger_provider"}


def test_all_is_sorted_and_equals_the_public_names() -> None:
    public = sorted(
        name
        for name, value in vars(instrumentation).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)  # submodules bound by their own import
        and type(value).__module__ != "__future__"  # `from __future__ import annotations`
    )

    assert instrumentation.__all__ == sorted(instrumentation.__all__)
    assert instrumentation.__all__ == public
    for name in instrumentation.__all__:
        assert getattr(instrumentation, name).__module__.startswith("instrumentation.")


PUBLIC_NAMES = [
    "BatchedRequest",
    "ConfigError",
    "DuplicatePredictionId",
    "FeatureSpec",
    "FeedbackResult",
    "InvalidInput",
    "MetricValue",
    "ModelMonitor",
    "ModelSpec",
    "MonitorConfig",
    "MonitorError",
    "OTLPSettings",
    "PredictionInput",
    "PredictionRecord",
    "PredictionRecorder",
    "PredictionStore",
    "PrometheusEndpoint",
    "ReferenceProfile",
    "SQLiteStore",
    "Spool",
    "StoreError",
    "StoreURL",
    "StoreUnavailable",
    "Window",
    "build_meter_provider",
    "build_reference_profile",
    "flush_and_shutdown",
    "new_instance_id",
    "open_store",
]
"""The surface, spelled out: adding or removing a public name is a decision, not a side effect."""


def test_the_public_surface_is_exactly_these_names() -> None:
    assert instrumentation.__all__ == PUBLIC_NAMES


def test_everything_the_docs_tell_people_to_import_is_public() -> None:
    readme = "\n".join(
        p.read_text(encoding="utf-8")
        for p in [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
    )
    imported = {
        name.strip()
        for names in re.findall(r"^from instrumentation import ([^(\n]+)$", readme, re.M)
        for name in names.split(",")
    }
    # Prose names a function by its dotted path (``instrumentation.metrics.reference.x``).
    dotted = set(re.findall(r"`instrumentation(?:\.[a-z_]+)+\.([A-Za-z_]+)`", readme))

    assert imported, "the scan must see the docs' imports"
    assert imported | dotted <= set(instrumentation.__all__)


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from instrumentation import *", namespace)

    assert sorted(n for n in namespace if n != "__builtins__") == instrumentation.__all__


def _sources() -> list[Path]:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) >= 10, files  # the scan must actually see the package
    return files


def _imported_modules(tree: ast.AST) -> list[str]:
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name | ast.Attribute)
            and getattr(node.func, "id", getattr(node.func, "attr", "")) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            found.append(str(node.args[0].value))
    return found


def test_the_import_scanner_sees_every_import_form() -> None:
    snippet = (
        "import bentoml\nfrom bentoml.io import JSON\nimport os, _bentoml_impl.server as s\n"
        "from . import sibling\nimportlib.import_module('_bentoml_sdk')\n"
    )

    assert _imported_modules(ast.parse(snippet)) == [
        "bentoml",
        "bentoml.io",
        "os",
        "_bentoml_impl.server",
        "_bentoml_sdk",
    ]


def test_no_module_of_the_library_imports_a_serving_framework() -> None:
    offenders = [
        f"{path.relative_to(REPO)}: {module}"
        for path in _sources()
        for module in _imported_modules(ast.parse(path.read_text(encoding="utf-8")))
        if module.split(".")[0] in FORBIDDEN_IMPORTS
    ]

    assert offenders == []


def test_importing_the_library_loads_no_serving_framework() -> None:
    code = (
        "import sys, instrumentation, instrumentation.metrics.drift, "
        "instrumentation.metrics.fairness, instrumentation.metrics.estimate\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN_IMPORTS!r}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert result.stdout.strip() == "[]"


def test_the_library_never_installs_global_providers_or_writes_the_environment() -> None:
    offenders: list[str] = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            where = f"{path.relative_to(REPO)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Attribute | ast.Name):
                name = node.attr if isinstance(node, ast.Attribute) else node.id
                if name in GLOBAL_SETTERS or name in {"putenv", "unsetenv"}:
                    offenders.append(f"{where}: {name}")
            targets: list[ast.expr] = []
            if isinstance(node, ast.Assign | ast.AugAssign | ast.Delete):
                targets = (
                    node.targets if isinstance(node, ast.Assign | ast.Delete) else [node.target]
                )
            for target in targets:
                if isinstance(target, ast.Subscript) and ast.unparse(target.value) == "os.environ":
                    offenders.append(f"{where}: writes os.environ")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and ast.unparse(node.func.value) == "os.environ"
                and node.func.attr in {"setdefault", "update", "pop", "clear", "__setitem__"}
            ):
                offenders.append(f"{where}: os.environ.{node.func.attr}")

    assert offenders == []
