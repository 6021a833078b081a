"""The docs site builds strictly: a broken link, anchor or nav entry fails the build.

``make docs`` does the same; this keeps ``make test-fast`` honest about it too. The
build regenerates the reference pages from the code's tables first (``docs/hooks.py``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=REPO,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    built = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("index.html")}
    for page in ("reference/configuration", "reference/metrics", "reference/alert-rules"):
        assert f"{page}/index.html" in built, sorted(built)
