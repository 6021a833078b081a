"""Window metrics cost O(buckets × cells), not O(traffic).

1. Fills a store through the monitor with 1k, 10k and 50k labelled predictions
   (spread over the same 10 minutes of buckets) and times ``monitor.snapshot()``;
   the time follows the number of distinct cells (bounded), not the rows.
2. A day of one-minute buckets (1,440 × 500 cells): times summing a 24 h window
   before and after ``compact_aggregates`` rolls buckets older than 2 h into hours.
3. A day of traffic (``--day-rows``, 1M by default, one request per minute bucket,
   each labelled a minute later), compacted as housekeeping does it: ``snapshot()``
   at a quarter, half and all of the day, so "flat in N" is read off one run.
4. History (``GET /monitor/history``): a day of traffic (``--day-rows``), then a day of
   15-minute windows at one-minute steps (1,441 points), with the buckets compacted
   hourly as housekeeping does and with all 1,440 minute buckets kept (the worst case).
5. The fairness section of one window with 50, 500 and 2,000 groups (past the
   default cap of 50 only if ``MONITOR_MAX_GROUP_VALUES`` is raised): the cost per
   group should stay flat.

``--store postgresql`` runs 1–3 against a private PostgreSQL cluster on 127.0.0.1
(``harness/postgres.py``, stopped at the end) instead of SQLite files.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from bench._common import demo_predictor, median_seconds
from instrumentation import ModelMonitor, MonitorConfig, PredictionInput, SQLiteStore
from instrumentation.aggregates.cells import Cells
from instrumentation.aggregates.fairness import FairnessSection
from instrumentation.spec import ModelSpec
from instrumentation.store.keys import encode_key
from instrumentation.store.protocol import Increments, PredictionStore
from service.predictor import Predictor
from service.train import make_dataset

OpenStore = Callable[[str], PredictionStore]
"""Opens a new, empty store given a name for it."""


class Clock:
    """A settable clock so rows land in chosen buckets."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        """The current (settable) time."""
        return self.now


def main(argv: Sequence[str] | None = None) -> dict[int, float]:
    """Run the sections; returns the day section's ``snapshot()`` seconds by rows held."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--day-rows", type=int, default=1_000_000)
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument(
        "--sections",
        default="rows,day,rollup,history,groups",
        help="comma list of the sections to run (1 rows, 2 rollup, 3 day, 4 history, 5 groups)",
    )
    args = parser.parse_args(argv)
    sections = set(args.sections.split(","))
    predictor = demo_predictor()
    few = max(3, args.repeats // 3)
    day: dict[int, float] = {}
    with _stores(args.store) as open_store:
        print(f"store: {args.store}")
        if "rows" in sections:
            by_rows(predictor, open_store, args.repeats)
        if "day" in sections:
            day = day_of_traffic(predictor, open_store, args.day_rows, few)
        if "rollup" in sections:
            long_window(open_store, few)
        if "history" in sections:
            history_of_a_day(predictor, open_store, args.day_rows, few)
    if "groups" in sections:
        many_groups(predictor.spec, few)
    return day


@contextlib.contextmanager
def _stores(kind: str) -> Iterator[OpenStore]:
    """New stores of ``kind``: SQLite files in a scratch dir, or schemas of a private cluster."""
    if kind == "sqlite":
        workdir = Path(tempfile.mkdtemp(prefix="bench-metrics-"))
        yield lambda name: SQLiteStore(workdir / f"{name}.db")
        return
    from harness.postgres import PostgresCluster
    from instrumentation.store.postgres import PostgresStore  # optional driver

    numbers = itertools.count()
    with PostgresCluster.start_new() as cluster:

        def open_schema(name: str) -> PredictionStore:
            return PostgresStore(cluster.url(), schema=f"b{next(numbers)}_{name}")

        yield open_schema


def by_rows(predictor: Predictor, open_store: OpenStore, repeats: int) -> None:
    """``snapshot()`` over 1k, 10k and 50k rows in the same ten minute buckets."""
    spec = predictor.spec
    print(f"{'rows':>6} {'cells':>6} {'snapshot ms':>12} {'x 1k rows':>9}")
    baseline = None
    for rows in (1_000, 10_000, 50_000):
        clock = Clock(1_800_000_000.0)
        store = open_store(f"rows{rows}")
        monitor = ModelMonitor(spec, store, config=MonitorConfig(), clock=clock)
        instances, truth = make_dataset(rows, seed=rows)
        chunk = rows // 10
        for minute in range(10):
            clock.now = 1_800_000_000.0 + 60 * minute
            part = slice(minute * chunk, (minute + 1) * chunk)
            inputs = [PredictionInput(i["features"], None, i["groups"]) for i in instances[part]]
            with monitor.predict(inputs) as rec:
                labels, scores = predictor.classify([i.features for i in inputs])
                records = rec.set_outputs(labels=labels, scores=scores)
            monitor.feedback(
                [(r.prediction_id, t) for r, t in zip(records, truth[part], strict=True)]
            )
        cells = len(store.sum_aggregates(spec.name, spec.version, since_bucket=0))
        seconds = median_seconds(monitor.snapshot, repeats=repeats)
        baseline = baseline or seconds
        print(f"{rows:>6} {cells:>6} {seconds * 1e3:12.2f} {seconds / baseline:9.2f}")
        store.close()


class DayOfTraffic:
    """A day of labelled predictions written through a monitor, minute by minute.

    ``rows`` predictions spread evenly over 1,440 minute buckets from ``start``, each
    minute's labels half a minute later, buckets compacted hourly as housekeeping does.
    """

    def __init__(self, predictor: Predictor, rows: int) -> None:
        self.per_minute = max(1, rows // 1440)
        instances, self.truth = make_dataset(min(rows, 20_000), seed=3)
        self.inputs = [PredictionInput(i["features"], None, i["groups"]) for i in instances]
        self.labels, self.scores = predictor.classify([i.features for i in self.inputs])

    def minutes(
        self, monitor: ModelMonitor, clock: Clock, start: float, *, compact: bool = True
    ) -> Iterator[int]:
        """Write minute after minute; yields how many minutes are written so far."""
        per_minute = self.per_minute
        for minute in range(1440):
            clock.now = start + 60 * minute
            at = (minute * per_minute) % (len(self.inputs) - per_minute)
            part = slice(at, at + per_minute)
            with monitor.predict(self.inputs[part]) as rec:
                records = rec.set_outputs(labels=self.labels[part], scores=self.scores[part])
            clock.now += 30  # labels half a minute later
            monitor.feedback(
                [(r.prediction_id, t) for r, t in zip(records, self.truth[part], strict=True)]
            )
            if compact and minute % 60 == 59:
                monitor.compact_aggregates()  # what housekeeping does (hourly is enough)
            yield minute + 1


def day_of_traffic(
    predictor: Predictor, open_store: OpenStore, rows: int, repeats: int
) -> dict[int, float]:
    """``snapshot()`` seconds as a day of predictions accumulates (windows 5m, 1h, 24h)."""
    spec = predictor.spec
    start = 1_800_000_000.0 - 1_800_000_000.0 % 3600
    clock = Clock(start)
    monitor = ModelMonitor(spec, open_store("day"), clock=clock)
    day = DayOfTraffic(predictor, rows)
    print(f"{'day rows':>9} {'snapshot ms':>12} {'of which count ms':>18} {'x quarter':>9}")
    first = None
    seen: dict[int, float] = {}
    for minutes in day.minutes(monitor, clock, start):
        if minutes in (360, 720, 1440):
            seconds = _snapshot_after_traffic(
                monitor, day.inputs, day.labels, day.scores, day.truth, repeats
            )
            count = median_seconds(
                lambda: monitor.store.count_predictions(spec.name), repeats=repeats
            )
            first = first or seconds
            print(
                f"{minutes * day.per_minute:>9} {seconds * 1e3:12.2f} {count * 1e3:18.2f}"
                f" {seconds / first:9.2f}"
            )
            seen[minutes * day.per_minute] = seconds
    return seen


def history_of_a_day(
    predictor: Predictor, open_store: OpenStore, rows: int, repeats: int
) -> dict[str, float]:
    """``history()`` of a day at one-minute steps (15m windows) after a day of traffic."""
    start = 1_800_000_000.0 - 1_800_000_000.0 % 3600
    day = DayOfTraffic(predictor, rows)
    print(
        f"{'buckets':<24} {'history ms':>10} {'of which store read ms':>22} {'points':>7}"
        f" {'cells read':>10}"
    )
    seen = {}
    for name, compact in (("compacted hourly", True), ("1,440 minute buckets", False)):
        clock = Clock(start)
        store = open_store(f"history{int(compact)}")
        monitor = ModelMonitor(predictor.spec, store, clock=clock)
        for _ in day.minutes(monitor, clock, start, compact=compact):
            pass
        end = start + 86_400

        def history(end: float = end, monitor: ModelMonitor = monitor) -> None:
            monitor.history(window=900, step=60, start=end - 86_400, end=end)

        def read_cells(store: PredictionStore = store) -> dict[int, dict[str, float]]:
            return store.bucket_cells(
                predictor.spec.name, predictor.spec.version, since_bucket=int(start) - 900
            )

        seconds = median_seconds(history, repeats=repeats, warmup=1)
        reading = median_seconds(read_cells, repeats=repeats, warmup=1)
        read = sum(len(c) for c in read_cells().values())
        print(f"{name:<24} {seconds * 1e3:10.1f} {reading * 1e3:22.1f} {1441:>7} {read:>10}")
        seen[name] = seconds
    return seen


def _snapshot_after_traffic(
    monitor: ModelMonitor,
    inputs: list[PredictionInput],
    labels: list[str],
    scores: list[list[float]],
    truth: list[str],
    repeats: int,
) -> float:
    """Median ``snapshot()`` seconds, each call after one more request of 32 rows and labels.

    As a dashboard polls a serving model: every call finds new cells in the current
    bucket, so a cache of window sums cannot answer from memory alone.
    """
    times = []
    for i in range(repeats):
        part = slice(32 * i, 32 * i + 32)
        with monitor.predict(inputs[part]) as rec:
            records = rec.set_outputs(labels=labels[part], scores=scores[part])
        monitor.feedback([(r.prediction_id, t) for r, t in zip(records, truth[part], strict=True)])
        start = time.perf_counter()
        monitor.snapshot()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def long_window(open_store: OpenStore, repeats: int) -> None:
    """Summing a 24 h window of minute buckets, before and after roll-up."""
    store = open_store("rollup")
    now = 1_800_000_000 - 1_800_000_000 % 3600
    for hour in range(24):
        increments = Increments()
        for minute in range(60):
            bucket = now - 86_400 + 3600 * hour + 60 * minute
            for cell in range(500):
                increments.add("v", bucket, ("cell", str(cell)), 1.0)
        store.add_predictions("m", [], increments, max_group_values=1)  # cells, no rows

    def day() -> None:
        store.sum_aggregates("m", "v", since_bucket=now - 86_400)

    minutes = median_seconds(day, repeats=repeats, warmup=1)
    store.compact_aggregates("m", drop_before=0, rollup_before=now - 7200, rollup_width=3600)
    rolled = median_seconds(day, repeats=repeats, warmup=1)
    print(f"{'24h window':<22} {'sum ms':>8} {'x minutes':>9}")
    print(f"{'1,440 minute buckets':<22} {minutes * 1e3:8.1f} {1.0:9.2f}")
    print(f"{'rolled up (22h + 120m)':<22} {rolled * 1e3:8.1f} {rolled / minutes:9.2f}")


def many_groups(spec: ModelSpec, repeats: int) -> None:
    """The fairness report of one window as the number of groups grows."""
    section = FairnessSection(spec, min_group_samples=1)
    attribute = spec.sensitive_attributes[0]
    print(f"{'groups':>6} {'fairness ms':>12} {'per group x 50':>14}")
    per_group = None
    for groups in (50, 500, 2_000):
        sums = {
            encode_key(("group_confusion", attribute, f"g{g}", actual, predicted)): 1.0 + g % 7
            for g in range(groups)
            for actual in spec.classes
            for predicted in spec.classes
        }
        cells = Cells(sums)
        seconds = median_seconds(lambda cells=cells: section.report(cells), repeats=repeats)
        per_group = per_group or seconds / groups
        print(f"{groups:>6} {seconds * 1e3:12.2f} {seconds / groups / per_group:14.2f}")


if __name__ == "__main__":
    main()
