"""A PostgreSQL restart under load: no 5xx, and every acknowledged prediction is stored.

One ``bentoml serve`` (2 workers) on a private PostgreSQL cluster. Four client
threads send ``/predict`` and ``/feedback`` (labels for predictions acknowledged
earlier) on fresh connections, so both workers serve. PostgreSQL is restarted
(fast shutdown, then start) twice: once in a pause of the load, so that the first
requests after it meet pools holding only dead connections (before the checkout
check, each worker answered one of them 503); once mid-load, where predictions
made while the server is down are spooled and replayed, and ``/feedback`` may
answer 503 only while it is down. At the end every acknowledged id is stored. The load
and the restarts: ``harness/restart_load.py``, shared with ``bench/postgres_restart.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.otlp import wait_for
from harness.postgres import PostgresCluster
from harness.restart_load import restart_under_load, server_env, spooled, stored_ids

from .conftest import StartServer

pytestmark = pytest.mark.e2e


@pytest.fixture
def cluster() -> Iterator[PostgresCluster]:
    try:
        running = PostgresCluster.start_new()
    except RuntimeError as exc:
        pytest.fail(f"the restart test needs PostgreSQL: {exc}", pytrace=False)
    yield running
    running.stop()


def test_a_postgres_restart_under_load_answers_no_5xx_and_loses_nothing(
    cluster: PostgresCluster, start_server: StartServer, tmp_path: Path
) -> None:
    server = start_server(server_env(cluster, tmp_path / "spool"))
    outcome = restart_under_load(cluster, server.base_url)

    # While the server is down, /feedback may answer 503 (Retry-After): the store cannot
    # join. Predictions never fail, and nothing fails once PostgreSQL is back.
    after = outcome.relative(outcome.failed_while_up())
    while_down = outcome.relative(outcome.failed_while_down())
    assert after == [], f"5xx after the restart: {after}"
    assert all(p == "/feedback" and c == 503 for *_, p, c in while_down), while_down
    assert outcome.ok_after_last_restart() >= 80

    wait_for(lambda: spooled(server.base_url) == 0, timeout=60.0, message="spool not replayed")
    missing = set(outcome.acknowledged) - stored_ids(cluster)
    assert not missing, f"{len(missing)} acknowledged predictions not stored"
