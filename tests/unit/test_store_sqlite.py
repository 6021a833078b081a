"""SQLiteStore: atomic writes, every feedback status, cross-process joins, crash durability."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from instrumentation import DuplicatePredictionId, PredictionRecord, SQLiteStore
from instrumentation.store.base import Increments, Label, bucket_of
from instrumentation.store.sqlite import CHECKPOINT_BACKSTOP_PAGES

REPO = Path(__file__).resolve().parents[2]
T0 = 1_700_000_040.0
BUCKET = bucket_of(T0)
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
SPAN_ID = "b7ad6b7169203331"


def _record(
    pid: str,
    *,
    created: float = T0,
    label: str | None = "fraud",
    value: float | None = None,
    scores: tuple[float, ...] | None = (0.25, 0.75),
    groups: dict[str, str] | None = None,
) -> PredictionRecord:
    return PredictionRecord(
        prediction_id=pid,
        version="v1",
        created=created,
        label=label,
        value=value,
        scores=scores,
        groups=groups if groups is not None else {},
        trace_id=TRACE_ID,
        span_id=SPAN_ID,
    )


def _predictions(n: int, version: str = "v1", bucket: int = BUCKET) -> Increments:
    increments = Increments()
    increments.add(version, bucket, ("predictions",), float(n))
    return increments


def _count_labels(record: PredictionRecord, label: Label, now: float, out: Increments) -> None:
    """A label aggregator: one ``labels`` cell and one cell per (actual, predicted)."""
    out.add(record.version, bucket_of(now), ("labels",))
    out.add(record.version, bucket_of(now), ("confusion", str(label), str(record.label)))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    sqlite = SQLiteStore(tmp_path / "store.db")
    yield sqlite
    sqlite.close()


def _add(store: SQLiteStore, records: Sequence[PredictionRecord], **kwargs: Any) -> Any:
    return store.add_predictions(
        "m", records, _predictions(len(records)), max_group_values=kwargs.get("cap", 10)
    )


# --- predictions --------------------------------------------------------------------------------


def test_added_predictions_round_trip_exactly(store: SQLiteStore) -> None:
    classifier = _record("p-1", groups={"region": "north", "age": "30-49"})
    regressor = _record("p-2", label=None, value=12.5, scores=None)

    returned = _add(store, [classifier, regressor])

    assert returned == [classifier, regressor]
    assert store.get_predictions("m", ["p-2", "p-1", "absent"]) == {
        "p-1": classifier,
        "p-2": regressor,
    }
    assert store.get_predictions("other-model", ["p-1"]) == {}
    assert store.count_predictions("m") == 2
    assert store.count_predictions("other-model") == 0
    assert store.sum_aggregates("m", "v1", since_bucket=0) == {'["predictions"]': 2.0}


def test_a_reused_id_rejects_the_whole_batch_atomically(store: SQLiteStore) -> None:
    _add(store, [_record("taken")], cap=3)
    before = store.sum_aggregates("m", "v1", since_bucket=0)
    batch = [
        _record("new-1", groups={"region": "a"}),
        _record("new-2", groups={"region": "b"}),
        _record("taken", groups={"region": "c"}),
        _record("new-3"),
    ]

    with pytest.raises(DuplicatePredictionId) as raised:
        _add(store, batch, cap=3)

    assert raised.value.prediction_id == "taken"
    assert str(raised.value) == "prediction id 'taken' already exists for this model"
    assert set(store.get_predictions("m", ["new-1", "new-2", "new-3", "taken"])) == {"taken"}
    assert store.count_predictions("m") == 1
    assert store.sum_aggregates("m", "v1", since_bucket=0) == before
    # Group values of the failed batch were not admitted either: three fresh ones still fit.
    fresh = [_record(f"g-{v}", groups={"region": v}) for v in ("x", "y", "z")]
    assert [r.groups for r in _add(store, fresh, cap=3)] == [
        {"region": "x"},
        {"region": "y"},
        {"region": "z"},
    ]


def test_an_id_repeated_within_one_batch_is_rejected(store: SQLiteStore) -> None:
    with pytest.raises(DuplicatePredictionId) as raised:
        _add(store, [_record("a"), _record("b"), _record("a")])

    assert raised.value.prediction_id == "a"
    assert store.count_predictions("m") == 0
    assert store.sum_aggregates("m", "v1", since_bucket=0) == {}


def test_the_same_id_may_exist_for_two_models(store: SQLiteStore) -> None:
    _add(store, [_record("shared")])
    store.add_predictions("m2", [_record("shared")], _predictions(1), max_group_values=10)

    assert store.count_predictions("m") == store.count_predictions("m2") == 1


# --- labels -------------------------------------------------------------------------------------


def test_apply_labels_gives_every_status_and_only_matched_aggregates(store: SQLiteStore) -> None:
    _add(store, [_record(p, label="fraud") for p in ("dup", "con", "bad", "old", "new")])
    _add(store, [_record("fresh", created=T0 + 100)])
    first = store.apply_labels(
        "m", [("dup", "fraud"), ("con", "legit")], now=T0 + 10, ttl=150, aggregate=_count_labels
    )
    assert [o.status for o in first] == ["matched", "matched"]
    before = store.sum_aggregates("m", "v1", since_bucket=0)
    calls: list[tuple[str, Label]] = []

    def aggregate(record: PredictionRecord, label: Label, now: float, out: Increments) -> None:
        calls.append((record.prediction_id, label))
        _count_labels(record, label, now, out)

    outcomes = store.apply_labels(
        "m",
        [
            ("dup", "fraud"),
            ("con", "fraud"),
            ("nobody", "fraud"),
            ("bad", None),
            ("old", "fraud"),
            ("fresh", "legit"),
        ],
        now=T0 + 200,
        ttl=150,
        aggregate=aggregate,
    )

    assert [(o.prediction_id, o.status) for o in outcomes] == [
        ("dup", "duplicate"),
        ("con", "conflict"),
        ("nobody", "unknown"),
        ("bad", "invalid"),
        ("old", "expired"),
        ("fresh", "matched"),
    ]
    assert calls == [("fresh", "legit")]
    after = store.sum_aggregates("m", "v1", since_bucket=0)
    assert after == {
        **before,
        '["labels"]': before['["labels"]'] + 1,
        '["confusion","legit","fraud"]': before['["confusion","legit","fraud"]'] + 1,
    }
    stored = store.get_predictions("m", ["dup", "con", "bad", "old", "fresh"])
    assert {pid: (r.feedback, r.feedback_at) for pid, r in stored.items()} == {
        "dup": ("fraud", T0 + 10),
        "con": ("legit", T0 + 10),  # the first label stands
        "bad": (None, None),
        "old": (None, None),
        "fresh": ("legit", T0 + 200),
    }
    assert outcomes[5].record == stored["fresh"]
    assert outcomes[2].record is None


def test_a_label_already_given_reports_duplicate_or_conflict_even_past_the_ttl(
    store: SQLiteStore,
) -> None:
    _add(store, [_record("p")])
    store.apply_labels("m", [("p", "fraud")], now=T0 + 1, ttl=10, aggregate=_count_labels)

    outcomes = store.apply_labels(
        "m", [("p", "fraud"), ("p", "legit")], now=T0 + 1000, ttl=10, aggregate=_count_labels
    )

    assert [o.status for o in outcomes] == ["duplicate", "conflict"]


def test_the_same_label_twice_in_one_request_matches_once(store: SQLiteStore) -> None:
    _add(store, [_record("a"), _record("b")])

    outcomes = store.apply_labels(
        "m",
        [("a", "fraud"), ("a", "fraud"), ("b", "legit"), ("b", "fraud")],
        now=T0 + 1,
        ttl=60,
        aggregate=_count_labels,
    )

    assert [o.status for o in outcomes] == ["matched", "duplicate", "matched", "conflict"]
    assert store.sum_aggregates("m", "v1", since_bucket=0)['["labels"]'] == 2.0
    assert store.get_predictions("m", ["b"])["b"].feedback == "legit"


def test_regression_labels_are_stored_as_numbers(store: SQLiteStore) -> None:
    _add(store, [_record("r", label=None, value=2.0, scores=None)])

    outcomes = store.apply_labels(
        "m", [("r", 3.5), ("r", 3.5), ("r", 4.0)], now=T0 + 1, ttl=60, aggregate=_count_labels
    )

    assert [o.status for o in outcomes] == ["matched", "duplicate", "conflict"]
    assert store.get_predictions("m", ["r"])["r"].feedback == 3.5


def test_an_aggregator_error_rolls_the_whole_request_back(store: SQLiteStore) -> None:
    _add(store, [_record("a"), _record("b")])

    def failing(record: PredictionRecord, label: Label, now: float, out: Increments) -> None:
        if record.prediction_id == "b":
            raise RuntimeError("boom")
        _count_labels(record, label, now, out)

    with pytest.raises(RuntimeError, match="boom"):
        store.apply_labels(
            "m", [("a", "fraud"), ("b", "fraud")], now=T0 + 1, ttl=60, aggregate=failing
        )

    assert store.get_predictions("m", ["a"])["a"].feedback is None
    assert store.sum_aggregates("m", "v1", since_bucket=0) == {'["predictions"]': 2.0}


def test_sum_aggregates_filters_by_bucket_version_and_model(store: SQLiteStore) -> None:
    store.add_predictions("m", [_record("a")], _predictions(1, bucket=10), max_group_values=9)
    store.add_predictions("m", [_record("b")], _predictions(2, bucket=11), max_group_values=9)
    store.add_predictions("m", [_record("c")], _predictions(4, "v2", 11), max_group_values=9)
    store.add_predictions("x", [_record("d")], _predictions(8, bucket=11), max_group_values=9)

    assert store.sum_aggregates("m", "v1", since_bucket=10) == {'["predictions"]': 3.0}
    assert store.sum_aggregates("m", "v1", since_bucket=11) == {'["predictions"]': 2.0}
    assert store.sum_aggregates("m", "v1", since_bucket=12) == {}
    assert store.sum_aggregates("m", "v2", since_bucket=0) == {'["predictions"]': 4.0}


# --- across processes ---------------------------------------------------------------------------


def _child_add(path: str, ids: list[str]) -> int:
    store = SQLiteStore(path)
    store.add_predictions(
        "m", [_record(p) for p in ids], _predictions(len(ids)), max_group_values=9
    )
    store.close()
    return os.getpid()


def _child_label(path: str, labels: list[tuple[str, str]]) -> tuple[int, list[str]]:
    store = SQLiteStore(path)
    outcomes = store.apply_labels("m", labels, now=T0 + 30, ttl=3600, aggregate=_count_labels)
    store.close()
    return os.getpid(), [o.status for o in outcomes]


def _child_read(path: str, ids: list[str]) -> tuple[int, dict[str, Any], dict[str, float]]:
    store = SQLiteStore(path)
    feedback = {pid: r.feedback for pid, r in store.get_predictions("m", ids).items()}
    sums = store.sum_aggregates("m", "v1", since_bucket=0)
    store.close()
    return os.getpid(), feedback, sums


def test_a_label_joins_a_prediction_written_by_another_process(tmp_path: Path) -> None:
    path = str(tmp_path / "store.db")
    ids = ["p-1", "p-2", "p-3"]
    spawn = multiprocessing.get_context("spawn")
    with (
        ProcessPoolExecutor(1, mp_context=spawn) as writer,
        ProcessPoolExecutor(1, mp_context=spawn) as labeller,
    ):
        writer_pid = writer.submit(_child_add, path, ids).result(timeout=60)
        labeller_pid, statuses = labeller.submit(
            _child_label, path, [("p-1", "fraud"), ("p-2", "legit"), ("p-9", "fraud")]
        ).result(timeout=60)
        reader_pid, feedback, sums = writer.submit(_child_read, path, ids).result(timeout=60)

    assert len({os.getpid(), writer_pid, labeller_pid}) == 3
    assert reader_pid == writer_pid
    assert statuses == ["matched", "matched", "unknown"]
    expected_sums = {
        '["predictions"]': 3.0,
        '["labels"]': 2.0,
        '["confusion","fraud","fraud"]': 1.0,
        '["confusion","legit","fraud"]': 1.0,
    }
    # The writer sees the labeller's join, and so does a fresh connection here.
    assert (feedback, sums) == ({"p-1": "fraud", "p-2": "legit", "p-3": None}, expected_sums)
    store = SQLiteStore(path)
    assert {p: r.feedback for p, r in store.get_predictions("m", ids).items()} == feedback
    assert store.sum_aggregates("m", "v1", since_bucket=0) == expected_sums
    store.close()


_KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from instrumentation.store.base import Increments, PredictionRecord
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


# --- housekeeping -------------------------------------------------------------------------------


def test_evict_by_retention_returns_the_count_removed(store: SQLiteStore) -> None:
    _add(store, [_record(f"p{i}", created=T0 + 10 * i) for i in range(5)])  # T0 .. T0+40

    removed = store.evict("m", now=T0 + 125, retain=100, max_rows=100)

    assert removed == 3  # created before T0 + 25
    assert set(store.get_predictions("m", [f"p{i}" for i in range(5)])) == {"p3", "p4"}
    assert store.evict("m", now=T0 + 125, retain=100, max_rows=100) == 0


def test_evict_by_row_cap_drops_the_oldest(store: SQLiteStore) -> None:
    _add(store, [_record(f"p{i}", created=T0 + 10 * (4 - i)) for i in range(5)])
    store.add_predictions("other", [_record("o")], _predictions(1), max_group_values=9)

    removed = store.evict("m", now=T0 + 50, retain=1000, max_rows=2)

    assert removed == 3
    assert set(store.get_predictions("m", [f"p{i}" for i in range(5)])) == {"p0", "p1"}
    assert store.count_predictions("other") == 1


def test_the_row_cap_keeps_the_newest_rows_even_when_a_batch_shares_one_time(
    store: SQLiteStore,
) -> None:
    _add(store, [_record(f"p{i}", created=T0) for i in range(5)])  # one batch: one time

    assert store.evict("m", now=T0, retain=1000, max_rows=2) == 3
    assert set(store.get_predictions("m", [f"p{i}" for i in range(5)])) == {"p3", "p4"}


def test_an_evictor_working_from_an_old_read_never_goes_below_the_cap(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _add(store, [_record(f"p{i:03}", created=T0 + i) for i in range(100)])
    other = SQLiteStore(store.path)  # another worker
    read_then_write = store._transaction

    @contextlib.contextmanager
    def stalled() -> Iterator[Any]:
        # Between this process's read and its write, the other one evicts and more
        # predictions arrive: both must keep the newest 90 of what they saw.
        other.evict("m", now=T0 + 100, retain=1000, max_rows=90)
        _add(other, [_record(f"q{i}", created=T0 + 200 + i) for i in range(5)])
        with read_then_write() as cur:
            yield cur

    monkeypatch.setattr(store, "_transaction", stalled)
    removed = store.evict("m", now=T0 + 100, retain=1000, max_rows=90)

    assert removed == 0  # the other worker already removed p000..p009
    assert store.count_predictions("m") == 95
    other.close()


def test_group_values_are_capped_with_an_overflow_bucket(store: SQLiteStore) -> None:
    records = [_record(f"p{i}", groups={"region": f"r{i}", "band": "x"}) for i in range(10)]
    records.append(_record("missing", groups={"region": "__missing__", "band": "x"}))

    returned = store.add_predictions("m", records, _predictions(11), max_group_values=3)

    expected = ["r0", "r1", "r2"] + ["__other__"] * 7 + ["__missing__"]
    assert [r.groups["region"] for r in returned] == expected
    assert {r.groups["band"] for r in returned} == {"x"}
    stored = store.get_predictions("m", [r.prediction_id for r in records])
    assert [stored[r.prediction_id].groups["region"] for r in records] == expected
    later = store.add_predictions(
        "m",
        [_record("again", groups={"region": "r1"}), _record("new", groups={"region": "r10"})],
        _predictions(2),
        max_group_values=3,
    )
    assert [r.groups["region"] for r in later] == ["r1", "__other__"]
    # The cap is per model.
    other = store.add_predictions(
        "m2", [_record("p", groups={"region": "r9"})], _predictions(1), max_group_values=3
    )
    assert other[0].groups == {"region": "r9"}


def test_a_rolled_back_batch_admits_no_group_value(store: SQLiteStore) -> None:
    def add(*pairs: tuple[str, str]) -> list[str]:
        records = [_record(pid, groups={"g": value}) for pid, value in pairs]
        added = store.add_predictions("m", records, _predictions(len(records)), max_group_values=1)
        return [r.groups["g"] for r in added]

    # The second row finds x inserted by the first; the reused id then rolls both back.
    with pytest.raises(DuplicatePredictionId):
        add(("p1", "x"), ("p2", "x"), ("p1", "x"))

    assert add(("p3", "y")) == ["y"]  # y takes the only place
    assert add(("p4", "x")) == ["__other__"]
    # A second process (no cache) agrees.
    fresh = SQLiteStore(store.path)
    assert [
        r.groups["g"]
        for r in fresh.add_predictions(
            "m", [_record("p5", groups={"g": "x"})], _predictions(1), max_group_values=1
        )
    ] == ["__other__"]
    fresh.close()


def test_a_lease_is_held_until_it_expires_and_the_holder_can_renew(store: SQLiteStore) -> None:
    assert store.try_lease("gauges", "A", now=100.0, duration=10.0) is True
    assert store.try_lease("gauges", "B", now=105.0, duration=10.0) is False
    assert store.try_lease("gauges", "A", now=108.0, duration=10.0) is True  # until 118
    assert store.try_lease("gauges", "B", now=115.0, duration=10.0) is False
    assert store.try_lease("gauges", "B", now=118.5, duration=10.0) is True
    assert store.try_lease("gauges", "A", now=119.0, duration=10.0) is False
    assert store.try_lease("other", "A", now=119.0, duration=10.0) is True


def test_a_second_connection_sees_committed_rows_immediately(tmp_path: Path) -> None:
    first, second = SQLiteStore(tmp_path / "s.db"), SQLiteStore(tmp_path / "s.db")
    first.add_predictions("m", [_record("a")], _predictions(1), max_group_values=9)

    assert set(second.get_predictions("m", ["a"])) == {"a"}
    outcome = second.apply_labels(
        "m", [("a", "fraud")], now=T0 + 1, ttl=60, aggregate=_count_labels
    )
    assert [o.status for o in outcome] == ["matched"]
    assert first.get_predictions("m", ["a"])["a"].feedback == "fraud"
    assert first.sum_aggregates("m", "v1", since_bucket=0) == {
        '["predictions"]': 1.0,
        '["labels"]': 1.0,
        '["confusion","fraud","fraud"]': 1.0,
    }
    first.close()
    second.close()


@pytest.mark.parametrize("background", [True, False])
def test_the_log_is_checkpointed_by_a_background_thread_not_by_a_request(
    tmp_path: Path, background: bool
) -> None:
    path = tmp_path / "s.db"
    store = SQLiteStore(path, checkpoint_seconds=0.05 if background else None)
    initial = path.stat().st_size
    records = [_record(f"p{i}") for i in range(300)]
    store.add_predictions("m", records, _predictions(300), max_group_values=9)
    # Only a checkpoint writes the database file; commits append to the log.
    deadline = time.monotonic() + 5.0
    while background and path.stat().st_size == initial and time.monotonic() < deadline:
        time.sleep(0.02)
    grew = path.stat().st_size > initial
    backstop = store._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
    thread = store._checkpointer
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
    store.add_predictions("m", [_record("first")], _predictions(1), max_group_values=9)
    (pages,) = store._conn.execute("PRAGMA page_count").fetchone()
    store._conn.execute(f"PRAGMA max_page_count={pages}")  # the disk is full
    big = [_record(f"p{i}", groups={"region": "x" * 100}) for i in range(2000)]

    with pytest.raises(sqlite3.OperationalError, match="full"):
        store.add_predictions("m", big, _predictions(2000), max_group_values=9)

    assert store.count_predictions("m") == 1  # nothing of the failed batch
    store._conn.execute("PRAGMA max_page_count=1000000")
    store.add_predictions("m", [_record("after")], _predictions(1), max_group_values=9)
    assert store.count_predictions("m") == 2
    store.close()


def test_close_closes_the_readers_of_every_thread(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: store.count_predictions("m"), range(16)))
    readers = list(store._all_readers)
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
    real_connect = SQLiteStore._connect

    class RacingConnection:
        def __init__(self, conn: sqlite3.Connection) -> None:
            self._conn = conn

        def execute(self, sql: str, *args: Any) -> Any:
            if sql.startswith("PRAGMA journal_mode") and refusals:
                raise refusals.pop()
            return self._conn.execute(sql, *args)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._conn, name)

    monkeypatch.setattr(SQLiteStore, "_connect", lambda self: RacingConnection(real_connect(self)))
    store = SQLiteStore(tmp_path / "s.db", checkpoint_seconds=None)

    assert refusals == []
    assert store._conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    store.close()
