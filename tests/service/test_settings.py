"""``service.settings``: one function reads the environment; a bento serves its own model."""

from __future__ import annotations

from pathlib import Path

import pytest

from instrumentation import ConfigError
from service.bentoml_internals import BentoMLInternalsChanged, bento_model_tags
from service.settings import (
    DEFAULT_MODEL,
    Batching,
    CannotServe,
    load_settings,
    served_model_tag,
)

BUILT = "breast-cancer:abc123"


def test_settings_come_from_the_mapping_given() -> None:
    settings = load_settings({"MONITOR_MODEL": "iris-classifier", "MONITOR_MAX_BATCH": "7"})
    assert (settings.model, settings.model_from_env) == ("iris-classifier", True)
    assert settings.monitor.max_batch == 7
    default = load_settings({})
    assert (default.model, default.model_from_env) == (DEFAULT_MODEL, False)


def test_a_bad_value_names_its_variable() -> None:
    with pytest.raises(ConfigError, match=r"^MONITOR_MAX_BATCH='0': expected a whole number"):
        load_settings({"MONITOR_MAX_BATCH": "0"})


def test_adaptive_batching_is_off_unless_asked_for() -> None:
    assert load_settings({}).batching == Batching(False, 64, 60000)
    for on in ("1", "true", "ON", " on "):
        assert load_settings({"MONITOR_ADAPTIVE_BATCHING": on}).batching.enabled
    for off in ("0", "false", "Off", ""):
        assert not load_settings({"MONITOR_ADAPTIVE_BATCHING": off}).batching.enabled
    limits = load_settings({"MONITOR_BATCH_MAX_ROWS": "16", "MONITOR_BATCH_MAX_LATENCY_MS": "250"})
    assert (limits.batching.max_rows, limits.batching.max_latency_ms) == (16, 250)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"MONITOR_ADAPTIVE_BATCHING": "yes"},
            "MONITOR_ADAPTIVE_BATCHING='yes': expected 1/true/on or 0/false/off",
        ),
        ({"MONITOR_BATCH_MAX_ROWS": "1"}, "MONITOR_BATCH_MAX_ROWS=1: expected a whole number >= 2"),
        (
            {"MONITOR_BATCH_MAX_LATENCY_MS": "0"},
            "MONITOR_BATCH_MAX_LATENCY_MS='0': expected a whole number >= 1",
        ),
    ],
)
def test_a_bad_batching_setting_names_its_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(environ)
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("environ", "built_with", "served"),
    [
        ({}, [], DEFAULT_MODEL),  # not a bento: the default model
        ({"MONITOR_MODEL": "iris-classifier"}, [], "iris-classifier"),
        ({}, [BUILT], BUILT),  # a bento: its own model, not the default
        ({"MONITOR_MODEL": "breast-cancer"}, [BUILT], BUILT),
        ({"MONITOR_MODEL": "breast-cancer:latest"}, [BUILT], BUILT),
        ({"MONITOR_MODEL": BUILT}, [BUILT], BUILT),
    ],
)
def test_the_served_model(environ: dict[str, str], built_with: list[str], served: str) -> None:
    assert served_model_tag(load_settings(environ), built_with) == served


@pytest.mark.parametrize("other", ["fraud-detector", "breast-cancer:older"])
def test_a_bento_refuses_another_model(other: str) -> None:
    with pytest.raises(CannotServe) as raised:
        served_model_tag(load_settings({"MONITOR_MODEL": other}), [BUILT])
    assert str(raised.value).startswith(
        f"MONITOR_MODEL={other!r}: this bento was built to serve {BUILT} and serves only that"
    )


def write_bento(root: Path, yaml_text: str) -> Path:
    package = root / "src" / "service"
    package.mkdir(parents=True)
    (root / "bento.yaml").write_text(yaml_text)
    return package


def test_a_bentos_model_tags_come_from_its_bento_yaml(tmp_path: Path) -> None:
    # The shape BentoML 1.4 writes: top-level models empty, the service's models listed.
    package = write_bento(
        tmp_path,
        "models: []\nservices:\n- name: model_monitor\n  models:\n  - tag: breast-cancer:abc123\n",
    )
    assert bento_model_tags(package) == [BUILT]


def test_outside_a_bento_there_are_no_model_tags(tmp_path: Path) -> None:
    assert bento_model_tags(Path(__file__).resolve().parent) == []
    (tmp_path / "service").mkdir()
    (tmp_path / "bento.yaml").write_text("models: []\n")
    assert bento_model_tags(tmp_path / "service") == []  # no src/ between them


def test_an_unreadable_bento_yaml_fails_loudly(tmp_path: Path) -> None:
    package = write_bento(tmp_path, "services:\n- models:\n  - name: no-tag\n")
    with pytest.raises(BentoMLInternalsChanged, match="update service/bentoml_internals.py"):
        bento_model_tags(package)
