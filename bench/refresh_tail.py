"""Requests' tail while a 24 h window refreshes: /predict with and without /monitor polled.

A day of labelled traffic (``--day-rows``, 1M by default) is written into an SQLite
store through the library, spread over the last 24 hours in minute buckets and
compacted hourly as housekeeping does. The template then serves the same model on
that store with **one worker**, so every refresh runs in the process that answers
the requests (the worst case: with more workers only the lease holder pays). wrk
loads ``POST /predict`` (1 row, 8 connections) in rounds alternating *quiet* and
*refreshing*, where a client calls ``GET /monitor`` every ``--poll`` seconds; each
call reports the 5m, 1h and 24h windows of the day. Prints both modes' req/s, p50
and p99, the refreshing/quiet ratios, and what one ``GET /monitor`` took.

``--page`` polls as the monitoring page does (``--poll 5`` for its 5 s): each poll is
``GET /monitor`` then ``GET /monitor/history`` for the last hour of 5m windows.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import joblib

from bench._common import trained_home
from bench.metric_compute import Clock, DayOfTraffic
from bench.wrk import WrkResult, post_script, run_wrk, wrk_path
from harness.serving import Server
from instrumentation import ModelMonitor, ModelSpec, SQLiteStore
from service.model_store import MODEL_FILE, SPEC_FILE
from service.predictor import Predictor
from service.train import make_dataset

MODEL = "fraud-detector"


def served_predictor(home: Path) -> Predictor:
    """The model ``bentoml serve`` will load from ``home``, with the version it will report."""
    directory = home / "models" / MODEL
    version = (directory / "latest").read_text().strip()
    spec = json.loads((directory / version / SPEC_FILE).read_text())
    estimator = joblib.load(directory / version / MODEL_FILE)
    return Predictor(estimator, ModelSpec.from_dict(spec).with_version(version))


def write_day(path: Path, predictor: Predictor, rows: int) -> float:
    """A day of traffic ending a minute ago, into a new store at ``path``; seconds taken."""
    began = time.monotonic()
    start = time.time() - 86_400 + 60
    clock = Clock(start)
    store = SQLiteStore(path)
    monitor = ModelMonitor(predictor.spec, store, clock=clock)
    for _ in DayOfTraffic(predictor, rows).minutes(monitor, clock, start):
        pass
    store.close()
    return time.monotonic() - began


PAGE_HISTORY = "/monitor/history?window=5m"
"""What the page asks for besides ``GET /monitor`` (its ``from`` is added per call)."""


class Poller:
    """Calls ``GET /monitor`` every ``interval`` seconds in a thread; keeps each call's time.

    ``page``: each call is the page's refresh instead (``/monitor``, then its history).
    """

    def __init__(self, base_url: str, interval: float, *, page: bool = False) -> None:
        self.base_url = base_url
        self.interval = interval
        self.page = page
        self.times: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=30.0) as client:
            while not self._stop.is_set():
                began = time.perf_counter()
                response = client.get("/monitor")
                if self.page and response.status_code == 200:
                    since = int(time.time()) - 3600
                    response = client.get(f"{PAGE_HISTORY}&from={since}")
                took = time.perf_counter() - began
                if response.status_code == 200:
                    self.times.append(took)
                else:
                    self.failures += 1
                self._stop.wait(max(0.0, self.interval - took))


def _median(results: list[WrkResult], figure: str) -> float:
    return statistics.median(float(getattr(r, figure)) for r in results)


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Run the bench; returns refreshing ÷ quiet ``rps``, ``p50``, ``p99``, and ``monitor_ms``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--day-rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=4, help="rounds per mode")
    parser.add_argument("--seconds", type=float, default=8.0, help="wrk duration of a round")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between GET /monitor")
    parser.add_argument(
        "--page", action="store_true", help="poll as the page does: /monitor and its history"
    )
    args = parser.parse_args(argv)
    wrk_path()
    home = trained_home()
    predictor = served_predictor(home)
    with tempfile.TemporaryDirectory(prefix="bench-refresh-") as tmp:
        workdir = Path(tmp)
        store_path = workdir / "day.db"
        took = write_day(store_path, predictor, args.day_rows)
        print(f"wrote a day of {args.day_rows:,} labelled predictions in {took:.0f} s", flush=True)
        body = json.dumps({"instances": make_dataset(1, seed=1)[0]}).encode()
        script = post_script(body, workdir, "predict-1")
        env = {"MONITOR_WORKERS": "1", "MONITOR_STORE_URL": f"sqlite:///{store_path}"}
        with Server(workdir / "server", home, env) as server:
            url = f"{server.base_url}/predict"
            with server.client() as client:
                began = time.perf_counter()
                day = client.get("/monitor").raise_for_status().json()
                cold = time.perf_counter() - began
            rows_24h = _window_predictions(day, "24h")
            print(f"first GET /monitor (cold cache): {cold * 1e3:.0f} ms; "
                  f"24h window holds {rows_24h:,} predictions", flush=True)  # fmt: skip
            run_wrk(url, script, seconds=2)
            modes: dict[str, list[WrkResult]] = {"quiet": [], "refreshing": []}
            polls: list[float] = []
            failures = 0
            for index in range(args.rounds):
                for mode in modes:
                    if mode == "quiet":
                        result = run_wrk(url, script, seconds=args.seconds)
                    else:
                        with Poller(server.base_url, args.poll, page=args.page) as poller:
                            result = run_wrk(url, script, seconds=args.seconds)
                        polls += poller.times
                        failures += poller.failures
                    modes[mode].append(result)
                    print(f"  round {index + 1} {mode:<10} {result.rps:7.1f} req/s  "
                          f"p50 {result.p50 * 1e3:6.2f} ms  p99 {result.p99 * 1e3:6.2f} ms",
                          flush=True)  # fmt: skip
    print()
    print(f"{'mode':<11} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7}")
    for mode, results in modes.items():
        print(f"{mode:<11} {_median(results, 'rps'):7.1f} {_median(results, 'p50') * 1e3:7.2f}"
              f" {_median(results, 'p99') * 1e3:7.2f}")  # fmt: skip
    quiet, busy = modes["quiet"], modes["refreshing"]
    print(
        f"refreshing ÷ quiet: req/s {_median(busy, 'rps') / _median(quiet, 'rps'):.2f}, "
        f"p50 {_median(busy, 'p50') / _median(quiet, 'p50'):.2f}, "
        f"p99 {_median(busy, 'p99') / _median(quiet, 'p99'):.2f}"
    )
    print(
        f"GET /monitor during load: {len(polls)} calls, median {statistics.median(polls) * 1e3:.1f}"
        f" ms, max {max(polls) * 1e3:.1f} ms, {failures} failed"
    )
    if not all(r.valid for results in modes.values() for r in results):
        raise SystemExit("some rounds had non-2xx responses or socket errors")
    ratios = {f: _median(busy, f) / _median(quiet, f) for f in ("rps", "p50", "p99")}
    return ratios | {"monitor_ms": statistics.median(polls) * 1e3}


def _window_predictions(report: dict[str, object], window: str) -> int:
    """Predictions the served version's ``window`` report counts (the key names one place)."""
    windows = report["windows"]
    assert isinstance(windows, dict)
    return int(windows[window]["n_predictions"])


if __name__ == "__main__":
    main()
