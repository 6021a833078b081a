"""``make demo`` keeps working: a short run end to end, checked for the story it tells."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.serving import REPO, clean_environ, copy_home

pytestmark = pytest.mark.e2e


def test_a_short_demo_run_shows_drift_and_bias(tmp_path: Path, trained_home: Path) -> None:
    home = copy_home(trained_home, tmp_path)
    out = tmp_path / "out"
    env = {**clean_environ(), "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true"}
    run = subprocess.run(
        [
            sys.executable,
            *("-m", "demo"),
            *("--rows-per-phase", "400", "--rate", "80", "--label-delay", "1"),
            *("--out", str(out), "--workdir", str(tmp_path / "work")),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    history = json.loads((out / "history.json").read_text())
    phases = {s["phase"]: s for s in history["phase_summaries"]}
    assert list(phases) == ["baseline", "drift", "bias", "rollout"]
    threshold = history["final"]["windows"]["10m"]["drift"]["psi_threshold"]
    assert phases["baseline"]["psi_amount"] < threshold <= phases["drift"]["psi_amount"]
    assert phases["drift"]["psi_hour"] < threshold
    assert phases["bias"]["accuracy"] < phases["baseline"]["accuracy"]
    # The retrained version learnt from broken labels: the comparison says it is worse.
    rollout = phases["rollout"]
    assert rollout["new_accuracy"] < rollout["old_accuracy"]
    assert rollout["accuracy_diff_lower"] < rollout["accuracy_diff"] < 0
    # Since the rollout began, with the anytime interval (wider: valid at every look).
    assert rollout["rollout_diff_lower"] < rollout["rollout_diff"] < 0
    assert history["client"]["errors"] == 0
    # 400 rows in each of three phases, 800 in the rollout (30% of them to the retrained one).
    assert history["client"]["feedback"]["matched"] == 2000
    assert "whole run (10m window):" in run.stdout
    assert (out / "chart.png").stat().st_size > 10_000  # matplotlib comes with the demo extra
