"""SQLiteStore only: WAL durability after kill -9, the checkpoint thread, a full disk, readers."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from instrumentation import SQLiteStore, StoreUnavailable
from instrumentation.store.sqlite import CHECKPOINT_BACKSTOP_PAGES
from instrumentation.store.sqlite.connection import Database
from tests.unit.store.contract import T0, add, predictions, record

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    sqlite = SQLiteStore(tmp_path / "store.db")
    yield sqlite
    sqlite.close()


_KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from instrumentation.store.protocol import Increments, PredictionRecord
    from instrumentation.store.sqlite import SQLiteStore

    store = SQLiteStore(sys.argv[1])
    for batch in range(20):
        records = [
            PredictionRecord(f"b{batch}-{i}", "v1", 1.0, "a", None, None, {}, "1" * 32, "2" * 16)
            for i in range(5)
        ]
        increments = Increments()
        increments.add("v1", 0, ("predictions",), 5.0)
        store.add_predictions("m", records, increments, max_group_values=9)
        print(" ".join(r.prediction_id for r in records), flush=True)  # acknowledged
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_acknowledged_predictions_survive_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    result = subprocess.run(
        [sys.executable, "-c", _KILLED_WRITER, str(path)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    acknowledged = result.stdout.split()

    assert result.returncode == -signal.SIGKILL, result.stderr
    assert len(acknowledged) == 100
    # Nothing was checkpointed: the rows live only in the WAL the killed process left behind.
    assert Path(f"{path}-wal").stat().st_size > 0
    store = SQLiteStore(path)
    assert set(store.get_predictions("m", acknowledged)) == set(acknowledged)
    assert store.sum_aggregates("m", "v1", since_bucket=0) == {'["predictions"]': 100.0}
    store.close()


def test_an_evictor_working_from_an_old_read_never_goes_below_the_cap(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    add(store, [record(f"p{i:03}", created=T0 + i) for i in range(100)])
    other = SQLiteStore(store.path)  # another worker
    read_then_write = store.db.transaction

    @contextlib.contextmanager
    def stalled() -> Iterator[Any]:
        # Between this process's read and its write, the other one evicts and more
        # predictions arrive: both must keep the newest 90 of what they saw.
        other.evict("m", now=T0 + 100, retain=1000, max_rows=90)
        add(other, [record(f"q{i}", created=T0 + 200 + i) for i in range(5)])
        with read_then_write() as cur:
            yield cur

    monkeypatch.setattr(store.db, "transaction", stalled)
    removed = store.evict("m", now=T0 + 100, retain=1000, max_rows=90)

    assert removed == 0  # the other worker already removed p000..p009
    assert store.count_predictions("m") == 95
    other.close()


@pytest.mark.parametrize("background", [True, False])
def test_the_log_is_checkpointed_by_a_background_thread_not_by_a_request(
    tmp_path: Path, background: bool
) -> None:
    path = tmp_path / "s.db"
    store = SQLiteStore(path, checkpoint_seconds=0.05 if background else None)
    initial = path.stat().st_size
    records = [record(f"p{i}") for i in range(300)]
    store.add_predictions("m", records, predictions(300), max_group_values=9)
    # Only a checkpoint writes the database file; commits append to the log.
    deadline = time.monotonic() + 5.0
    while background and path.stat().st_size == initial and time.monotonic() < deadline:
        time.sleep(0.02)
    grew = path.stat().st_size > initial
    backstop = store.db.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
    thread = store.db.checkpointer
    assert (thread is not None and thread.is_alive()) is background
    store.close()
    assert grew is background
    assert backstop == (CHECKPOINT_BACKSTOP_PAGES if background else 1000)
    assert thread is None or not thread.is_alive()  # close() stops it
    reopened = SQLiteStore(path)
    assert set(reopened.get_predictions("m", ["p0", "p299"])) == {"p0", "p299"}
    reopened.close()


def test_a_full_disk_surfaces_its_own_error_and_leaves_the_store_usable(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db", checkpoint_seconds=None)
    store.add_predictions("m", [record("first")], predictions(1), max_group_values=9)
    (pages,) = store.db.conn.execute("PRAGMA page_count").fetchone()
    store.db.conn.execute(f"PRAGMA max_page_count={pages}")  # the disk is full
    big = [record(f"p{i}", groups={"region": "x" * 100}) for i in range(2000)]

    with pytest.raises(StoreUnavailable, match="full") as raised:
        store.add_predictions("m", big, predictions(2000), max_group_values=9)
    assert isinstance(raised.value.__cause__, sqlite3.OperationalError)

    assert store.count_predictions("m") == 1  # nothing of the failed batch
    store.db.conn.execute("PRAGMA max_page_count=1000000")
    store.add_predictions("m", [record("after")], predictions(1), max_group_values=9)
    assert store.count_predictions("m") == 2
    store.close()


def test_close_closes_the_readers_of_every_thread(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: store.count_predictions("m"), range(16)))
    readers = list(store.db.readers)
    assert readers

    store.close()

    for reader in readers:
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            reader.execute("SELECT 1")


def test_opening_waits_while_another_process_switches_the_file_to_wal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLite answers a journal-mode change that races another opener with an immediate
    # "database is locked" (no busy wait); the store must retry, not die at start-up.
    refusals = [sqlite3.OperationalError("database is locked")] * 3
    real_connect = Database.connect

    class RacingConnection:
        def __init__(self, conn: sqlite3.Connection) -> None:
            self._conn = conn

        def execute(self, sql: str, *args: Any) -> Any:
            if sql.startswith("PRAGMA journal_mode") and refusals:
                raise refusals.pop()
            return self._conn.execute(sql, *args)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._conn, name)

    monkeypatch.setattr(Database, "connect", lambda self: RacingConnection(real_connect(self)))
    store = SQLiteStore(tmp_path / "s.db", checkpoint_seconds=None)

    assert refusals == []
    assert store.db.conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    store.close()
