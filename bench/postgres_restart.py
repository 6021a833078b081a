"""PostgreSQL restarts under load: 5xx answered with the database up, predictions lost.

A real ``bentoml serve`` (2 workers) on a private PostgreSQL cluster, four client
threads alternating ``/feedback`` and ``/predict`` on fresh connections, while
PostgreSQL restarts (fast shutdown, then start): once in a pause of the load, then
mid-load again and again for ``--seconds`` (``harness/restart_load.py``, the
scenario ``tests/e2e/test_postgres_restart.py`` asserts on). While the database is
down, predictions are spooled and ``/feedback`` may answer 503; the figure is the
5xx answered to requests that met it up throughout, whose target is 0. Then, once the
spool is replayed, the acknowledged predictions missing from the store.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench._common import trained_home
from harness.otlp import wait_for
from harness.postgres import PostgresCluster
from harness.restart_load import restart_under_load, server_env, spooled, stored_ids
from harness.serving import Server

SECONDS = 40.0
QUICK_SECONDS = 15.0
SPOOL_WAIT_S = 60.0


def main(argv: Sequence[str] | None = None) -> dict[str, int]:
    """Run the bench; returns the counts printed (``failed_while_up`` is the target's)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_SECONDS:g} s of load")
    parser.add_argument("--seconds", type=float, help=f"of load (default {SECONDS:g})")
    args = parser.parse_args(argv)
    seconds = args.seconds or (QUICK_SECONDS if args.quick else SECONDS)
    home = trained_home()
    try:
        with (
            tempfile.TemporaryDirectory(prefix="bench-pg-restart-") as tmp,
            PostgresCluster.start_new() as cluster,
        ):
            env = server_env(cluster, Path(tmp) / "spool")
            with Server(Path(tmp) / "server", home, env) as server:
                # The load is bounded by time here, not by each client's rounds.
                outcome = restart_under_load(
                    cluster, server.base_url, seconds=seconds, rounds=100_000
                )
                replayed = _replayed(server.base_url)
                missing = set(outcome.acknowledged) - stored_ids(cluster)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    down = outcome.failed_while_down()
    counts = {
        "requests": len(outcome.answers),
        "restarts": 1 + len(outcome.outages),
        "failed": len(outcome.failed()),
        "failed_while_down": len(down),
        "failed_while_down_not_feedback_503": sum(
            not (path == "/feedback" and status == 503) for *_, path, status in down
        ),
        "failed_while_up": len(outcome.failed_while_up()),
        "acknowledged": len(outcome.acknowledged),
        "missing": len(missing),
    }
    sent = [at for at, *_ in outcome.answers]
    span = max(sent) - min(sent)
    late = "" if replayed else f" (spool not replayed after {SPOOL_WAIT_S:g} s)"
    print(
        f"{counts['requests']} requests sent in {span:.0f} s; PostgreSQL restarted "
        f"{counts['restarts']} times (once in a pause, then mid-load)\n"
        f"5xx answers: {counts['failed']} in all; {counts['failed_while_down']} in flight while "
        f"PostgreSQL was down ({counts['failed_while_down_not_feedback_503']} of them other "
        f"than /feedback 503); {counts['failed_while_up']} that met it up throughout "
        f"(target 0){_listed(outcome.relative(outcome.failed()))}\n"
        f"acknowledged predictions missing from the store: {counts['missing']} of "
        f"{counts['acknowledged']}{late}"
    )
    return counts


def _listed(answers: list[tuple[float, float, str, int]]) -> str:
    """The 5xx answers as ``path status (sent → answered, s from the first stop)``."""
    shown = ", ".join(f"{p} {c} ({s:+.2f} → {a:+.2f} s)" for s, a, p, c in answers[:10])
    return f": {shown}" if shown else ""


def _replayed(base_url: str) -> bool:
    """Wait for the spool to be replayed into the store; False if it is not in time."""
    try:
        wait_for(lambda: spooled(base_url) == 0, timeout=SPOOL_WAIT_S, message="spool")
    except AssertionError:
        return False
    return True


if __name__ == "__main__":
    main()
