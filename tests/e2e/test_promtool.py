"""The shipped Prometheus rules and configs pass Prometheus' and Alertmanager's own checkers.

``promtool test rules`` runs deploy/prometheus/tests/*.yml: every alert firing and not
firing on series shaped like the workers' endpoints. The binaries are Debian's; a
missing one fails (``make services`` installs them), it never skips.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from .backends import ALERTMANAGER_CONFIG, PROMETHEUS_CONFIG, PROMETHEUS_DIR, RULES, require_binary

pytestmark = pytest.mark.e2e

RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
ALERTS = [
    rule["alert"]
    for group in yaml.safe_load(RULES.read_text())["groups"]
    for rule in group["rules"]
]


def run(*args: str | Path) -> str:
    result = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=120, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, (
        f"{' '.join(map(str, args))} exited {result.returncode}:\n{output}"
    )
    return output


def test_promtool_checks_the_rules_and_the_config() -> None:
    promtool = require_binary("promtool")

    assert f"SUCCESS: {len(ALERTS)} rules found" in run(promtool, "check", "rules", RULES)
    assert "is valid prometheus config file syntax" in run(
        promtool, "check", "config", PROMETHEUS_CONFIG
    )


def test_promtool_unit_tests_pass() -> None:
    promtool = require_binary("promtool")
    assert RULE_TESTS, "no rule unit tests in deploy/prometheus/tests/"

    assert "SUCCESS" in run(promtool, "test", "rules", *RULE_TESTS)


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    alerts = set(ALERTS)
    assert len(alerts) == len(ALERTS), "two alerts share a name"
    fires: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                (fires if case["exp_alerts"] else quiet).add(case["alertname"])

    assert sorted(alerts - fires) == [], "alerts never tested firing"
    assert sorted(alerts - quiet) == [], "alerts never tested staying quiet"
    assert fires | quiet <= alerts, "unit tests name alerts rules.yml does not have"


def test_amtool_checks_the_alertmanager_config() -> None:
    amtool = require_binary("amtool")

    assert "SUCCESS" in run(amtool, "check-config", ALERTMANAGER_CONFIG)


def test_a_missing_binary_fails_the_test_with_the_install_hint() -> None:
    with pytest.raises(pytest.fail.Exception) as raised:
        require_binary("no-such-prometheus", "no-such-alertmanager")

    assert str(raised.value) == (
        "no-such-prometheus / no-such-alertmanager not found: install Debian's prometheus and "
        "prometheus-alertmanager packages (`make services` runs deploy/install-services.sh, "
        "which does)"
    )
