"""Soak: a real server under steady traffic while its telemetry backend flaps.

``make soak`` (``SOAK_ARGS="--minutes 3"``) runs ``bentoml serve`` with 2 workers,
sends predictions (one row each, from ``service.train.make_dataset``) at a steady
rate and their labels a few seconds later, while the OTLP endpoint cycles
up → down (refused) → blackholed (accepts, never answers) → up. Every minute it
prints each server process's RSS and open descriptors, the store file (+ WAL),
the spool, predict latency p50/p99, errors and the metric exports received.

At the end it passes or fails on:

- **flat resources**: per process, the last minute's median RSS within 10% (or
  8 MiB) of the second minute's, and its most descriptors within 4 of the
  second minute's most (``bench/_soak_checks.py``); no process replaced;
- **availability**: every prediction and label answered 2xx, every label matched;
- **a bounded store**: with a small ``MONITOR_MAX_STORED_PREDICTIONS`` and
  ``MONITOR_PREDICTION_TTL``, rows within the cap and none older than the TTL,
  give or take one housekeeping round (60 s of traffic);
- **exports resume**: after every return of the backend, metrics from both
  workers arrive again (and once more after the traffic, within 60 s);
- **honest figures**: ``GET /monitor``'s accuracy and per-class precision,
  recall and F1 equal scikit-learn's on the labelled rows of each window;
- **shutdown**: SIGTERM stops the server within 30 s.

Exit status 0 when every check passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench._common import p99, trained_home
from bench._flapping import FlappingEndpoint, Mode
from bench._soak_checks import (
    ProcessSample,
    directory_bytes,
    figure_mismatches,
    file_bytes,
    flat,
    processes_under,
    sample_process,
    stored_rows,
)
from harness.otlp import SERVICE_INSTANCE_ID, OTLPReceiver
from harness.processes import free_port_run
from harness.serving import Server
from instrumentation.store.buckets import bucket_of
from service.train import make_dataset

CLASSES = ("legit", "fraud")
HOUSEKEEPING_SECONDS = 60.0
"""The service evicts once a minute: the store may exceed its bounds by that much traffic."""

CYCLE: tuple[tuple[Mode, float], ...] = (("up", 2.0), ("down", 1.0), ("blackhole", 1.0))
"""The backend's cycle, in phases of ``--phase-seconds``: up twice as long, to reconnect."""


@dataclass
class Traffic:
    """Everything sent and answered, appended to by the request threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (time, seconds)
    errors: list[tuple[float, str]] = field(default_factory=list)
    pending: list[tuple[float, str, str, str]] = field(default_factory=list)  # ack, id, pred, true
    labelled: list[tuple[float, float, str, str]] = field(
        default_factory=list
    )  # t0, t1, true, pred
    sent: int = 0

    def error(self, what: str) -> None:
        """Count one failed request (or unmatched label), with what went wrong."""
        with self.lock:
            self.errors.append((time.time(), what))


def _predict(client: httpx.Client, traffic: Traffic, instance: dict[str, Any], truth: str) -> None:
    start = time.perf_counter()
    try:
        response = client.post("/predict", json={"instances": [instance]})
    except httpx.HTTPError as exc:
        traffic.error(f"predict: {type(exc).__name__}")
        return
    elapsed = time.perf_counter() - start
    now = time.time()
    if response.status_code != 200:
        traffic.error(f"predict: HTTP {response.status_code}")
        return
    body = response.json()
    row = body["predictions"][0]
    recorded = body.get("recorded", True) is not False and row.get("recorded", True) is not False
    with traffic.lock:
        traffic.latencies.append((now, elapsed))
        traffic.pending.append((now, row["prediction_id"], row["label"], truth))
    if not recorded:
        traffic.error("predict: recorded false")


def _send_labels(client: httpx.Client, traffic: Traffic, *, older_than: float) -> None:
    with traffic.lock:
        due = [p for p in traffic.pending if p[0] <= older_than]
        traffic.pending = [p for p in traffic.pending if p[0] > older_than]
    if not due:
        return
    body = {"labels": [{"prediction_id": pid, "label": truth} for _, pid, _, truth in due]}
    t0 = time.time()
    try:
        response = client.post("/feedback", json=body)
    except httpx.HTTPError as exc:
        traffic.error(f"feedback: {type(exc).__name__}")
        return
    t1 = time.time()
    if response.status_code != 200:
        traffic.error(f"feedback: HTTP {response.status_code}")
        return
    for (_, _, predicted, truth), result in zip(due, response.json()["results"], strict=True):
        if result["status"] == "matched":
            with traffic.lock:
                traffic.labelled.append((t0, t1, truth, predicted))
        else:
            traffic.error(f"feedback: {result['status']}")


@dataclass
class Soak:
    """One soak run's settings, server, backend and records."""

    args: argparse.Namespace
    server: Server
    receiver: OTLPReceiver
    endpoint: FlappingEndpoint
    traffic: Traffic = field(default_factory=Traffic)
    samples: list[tuple[float, list[ProcessSample], int, int]] = field(default_factory=list)
    phases: list[tuple[float, Mode]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    exporting_done: threading.Event = field(default_factory=threading.Event)
    arrivals: list[tuple[float, str]] = field(default_factory=list)

    def watch_exports(self) -> None:
        """Every second, note the arrival time and sender of each new metric export."""
        seen = 0
        while not self.exporting_done.wait(1.0):
            received = self.receiver.metrics("ml.predictions")
            now = time.time()
            self.arrivals += [
                (now, str(res.get(SERVICE_INSTANCE_ID))) for res, _ in received[seen:]
            ]
            seen = len(received)

    def drive(self) -> None:
        """Predictions at ``--rate`` per second and their labels, until ``stop``."""
        rows = int(self.args.rate * self.args.minutes * 60) + 1
        instances, truths = make_dataset(rows, seed=self.args.seed)
        interval = 1.0 / self.args.rate
        with self.server.client(timeout=10.0) as client, ThreadPoolExecutor(8) as pool:
            start = time.monotonic()
            next_label = start + 1.0
            for i in range(rows):
                due = start + i * interval
                while (now := time.monotonic()) < due:
                    if now >= next_label:
                        pool.submit(
                            _send_labels, client, self.traffic,
                            older_than=time.time() - self.args.label_delay,
                        )  # fmt: skip
                        next_label += 1.0
                    time.sleep(min(due - now, 0.01))
                if self.stop.is_set():
                    break
                pool.submit(_predict, client, self.traffic, instances[i], str(truths[i]))
                self.traffic.sent += 1
            pool.shutdown(wait=True)
            _send_labels(client, self.traffic, older_than=time.time())  # the last ones now

    def flap(self) -> None:
        """Cycle the backend through :data:`CYCLE` until ``stop``."""
        while not self.stop.is_set():
            for mode, length in CYCLE:
                self.endpoint.set_mode(mode)
                self.phases.append((time.time(), mode))
                if self.stop.wait(length * self.args.phase_seconds):
                    return

    def sample(self) -> None:
        """Every 5 s: each server process's RSS and descriptors, store and spool sizes."""
        store = self.server.store_path
        while True:
            group = self.server.proc.pid if self.server.proc else 0
            procs = [s for pid, role in processes_under(group) if (s := sample_process(pid, role))]
            size = file_bytes(store, Path(f"{store}-wal"))
            spool = directory_bytes(store.parent / "spool")
            self.samples.append((time.time(), procs, size, spool))
            if self.stop.wait(5.0):
                return


def _minute_lines(soak: Soak, start: float, minute: int, export_counts: dict[int, int]) -> str:
    lo, hi = start + 60 * minute, start + 60 * (minute + 1)
    lat = [s for t, s in soak.traffic.latencies if lo <= t < hi]
    errs = [e for t, e in soak.traffic.errors if lo <= t < hi]
    samples = [s for s in soak.samples if lo <= s[0] < hi]
    starts = [t for t, _ in soak.phases] + [float("inf")]
    modes = [m for i, (t, m) in enumerate(soak.phases) if t < hi and starts[i + 1] > lo]
    procs: dict[int, list[ProcessSample]] = {}
    for _, ps, _, _ in samples:
        for p in ps:
            procs.setdefault(p.pid, []).append(p)
    proc_text = "  ".join(
        f"{ps[0].role} {pid}: {statistics.median(p.rss_mib for p in ps):.0f} MiB "
        f"{max(p.fds for p in ps)} fds"
        for pid, ps in sorted(procs.items())
    )
    store = max((s[2] for s in samples), default=0)
    spool = max((s[3] for s in samples), default=0)
    latency = (
        f"p50 {statistics.median(lat) * 1000:.1f} ms p99 {p99(lat) * 1000:.1f} ms" if lat else "-"
    )
    return (
        f"min {minute + 1:>2}: {len(lat):>5} ok {len(errs):>3} errors  {latency}  "
        f"store+wal {store / 1024:.0f} KiB  spool {spool} B  exports {export_counts.get(minute, 0)}"
        f"  backend {','.join(modes)}\n         {proc_text}"
    )


def _resumed(soak: Soak, instances: set[str], since: float, until: float) -> float | None:
    """Seconds from ``since`` until every instance had exported again, if before ``until``."""
    firsts = {}
    for t, who in soak.arrivals:
        if since <= t < until and who not in firsts:
            firsts[who] = t
    if not instances or set(firsts) != instances:
        return None
    return max(firsts.values()) - since


def _check_exports(soak: Soak, end: float) -> list[tuple[bool, str]]:
    instances = {who for _, who in soak.arrivals}
    results = [(len(instances) == 2, f"metric exports from {len(instances)} worker(s) (want 2)")]
    bounds = [t for t, _ in soak.phases] + [end]
    full = CYCLE[0][1] * soak.args.phase_seconds
    for i, (start, mode) in enumerate(soak.phases):
        if mode != "up" or i == 0 or start >= end:
            continue
        took = _resumed(soak, instances, start, bounds[i + 1])
        after = soak.phases[i - 1][1]
        if took is not None:
            results.append((True, f"exports resumed after {after}: {took:.1f} s after its return"))
        elif bounds[i + 1] - start < full - 1:
            results.append((True, f"after {after}: up phase cut short by the end of traffic"))
        else:
            results.append((False, f"exports NEVER resumed after {after} within {full:.0f} s"))
    return results


def _check_figures(
    soak: Soak, snapshot: dict[str, Any], asked: tuple[float, float]
) -> list[tuple[bool, str]]:
    results: list[tuple[bool, str]] = []
    labelled = soak.traffic.labelled
    for name, seconds in (("5m", 300.0), ("1h", 3600.0)):
        lows = {bucket_of(t - seconds) + 60 for t in asked}
        if len(lows) != 1:
            results.append((True, f"{name}: skipped (the request straddled a bucket edge)"))
            continue
        low = lows.pop()
        inside = [(y, p) for t0, t1, y, p in labelled if t0 >= low]
        unsure = [1 for t0, t1, _, _ in labelled if t0 < low <= t1]
        if unsure:
            results.append((True, f"{name}: skipped ({len(unsure)} labels sent across its edge)"))
            continue
        window = snapshot["windows"][name]
        wrong = figure_mismatches(window, [y for y, _ in inside], [p for _, p in inside], CLASSES)
        results.append(
            (
                not wrong,
                f"{name}: accuracy, precision/recall/F1 per class on {len(inside)} labels "
                + ("equal sklearn (1e-9)" if not wrong else "DIFFER: " + "; ".join(wrong)),
            )
        )
    return results


def _check_store(soak: Soak, end: float) -> list[tuple[bool, str]]:
    args = soak.args
    rows, oldest = stored_rows(soak.server.store_path)
    slack = int(args.rate * HOUSEKEEPING_SECONDS)
    age = end - oldest if oldest is not None else 0.0
    return [
        (
            rows <= args.max_stored + slack,
            f"store: {rows} rows for {soak.traffic.sent} sent; cap {args.max_stored} "
            f"(+{slack}, one housekeeping round)",
        ),
        (
            age <= args.ttl_seconds + HOUSEKEEPING_SECONDS + 5,
            f"store: oldest row {age:.0f} s old; TTL {args.ttl_seconds:.0f} s (+60 s)",
        ),
    ]


def _check_resources(soak: Soak, start: float, minutes: int) -> list[tuple[bool, str]]:
    def by_pid(minute: int) -> dict[int, list[ProcessSample]]:
        found: dict[int, list[ProcessSample]] = {}
        for t, procs, _, _ in soak.samples:
            if start + 60 * minute <= t < start + 60 * (minute + 1):
                for p in procs:
                    found.setdefault(p.pid, []).append(p)
        return found

    second, last = by_pid(1), by_pid(minutes - 1)
    results = [(set(second) == set(last), f"processes: {sorted(second)} -> {sorted(last)}")]
    for pid in sorted(set(second) & set(last)):
        ok, text = flat(second[pid], last[pid])
        results.append((ok, f"{second[pid][0].role} {pid}: {text}"))
    return results


def run(args: argparse.Namespace, workdir: Path) -> bool:
    """One soak; prints as it goes; True if every check passed."""
    env = {
        "MONITOR_WORKERS": "2",
        "MONITOR_TRACE_SAMPLE_RATE": "1.0",
        "MONITOR_MAX_STORED_PREDICTIONS": str(args.max_stored),
        "MONITOR_PREDICTION_TTL": f"{int(args.ttl_seconds)}s",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_METRIC_EXPORT_INTERVAL": "2000",
    }
    print("soak: training the demo model, starting the server (2 workers)", flush=True)
    with contextlib.ExitStack() as stack:
        home = trained_home()
        stack.callback(shutil.rmtree, home, ignore_errors=True)
        receiver = stack.enter_context(OTLPReceiver())
        endpoint = FlappingEndpoint(free_port_run(1), receiver.port)
        stack.callback(endpoint.close)
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{endpoint.port}"
        server = stack.enter_context(Server(workdir / "server", home, env))
        soak = Soak(args, server, receiver, endpoint)
        threads = [
            threading.Thread(target=f, daemon=True)
            for f in (soak.flap, soak.sample, soak.watch_exports)
        ]
        for thread in threads:
            thread.start()
        start = time.time()
        print(f"soak: {args.minutes} min, {args.rate}/s, server {server.base_url}", flush=True)
        driver = threading.Thread(target=soak.drive, daemon=True)
        driver.start()
        reported = 0
        while driver.is_alive():
            driver.join(1.0)
            while time.time() >= start + 60 * (reported + 1):
                print(
                    _minute_lines(soak, start, reported, _exports_by_minute(soak, start)),
                    flush=True,
                )
                reported += 1
        soak.stop.set()
        end = time.time()
        endpoint.set_mode("up")
        soak.phases.append((end, "up"))
        resumed = _wait_resumed(soak, end, timeout=60.0)
        soak.exporting_done.set()
        for thread in threads:
            thread.join(10)
        asked = time.time()
        with server.client() as client:
            snapshot = client.get("/monitor").json()
        asked_range = (asked, time.time())
        results = _check_exports(soak, end) + [
            (resumed is not None, f"exports resumed after the traffic: {resumed} s")
        ]
        results += [
            (not soak.traffic.errors, f"availability: {soak.traffic.sent} predictions, "
             f"{len(soak.traffic.labelled)} labels matched, {len(soak.traffic.errors)} errors "
             f"{sorted({e for _, e in soak.traffic.errors})[:5]}"),
        ]  # fmt: skip
        results += _check_store(soak, end)
        results += _check_resources(soak, start, args.minutes)
        results += _check_figures(soak, snapshot, asked_range)
        stopping = time.monotonic()
        server.stop(timeout=30)
        took = time.monotonic() - stopping
        results.append((not server.killed, f"shutdown: SIGTERM to exit in {took:.1f} s"))
    print("\nchecks:")
    for ok, text in results:
        print(f"  {'PASS' if ok else 'FAIL'}  {text}")
    passed = all(ok for ok, _ in results)
    print(f"soak {'PASSED' if passed else 'FAILED'}")
    return passed


def _exports_by_minute(soak: Soak, start: float) -> dict[int, int]:
    counts: dict[int, int] = {}
    for t, _ in soak.arrivals:
        minute = int((t - start) // 60)
        counts[minute] = counts.get(minute, 0) + 1
    return counts


def _wait_resumed(soak: Soak, since: float, *, timeout: float) -> float | None:
    instances = {who for _, who in soak.arrivals}
    deadline = time.time() + timeout
    while time.time() < deadline:
        took = _resumed(soak, instances, since, float("inf"))
        if took is not None:
            return round(took, 1)
        time.sleep(1.0)
    return None


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run one soak, return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=int, default=10, help="traffic duration (>= 3)")
    parser.add_argument("--rate", type=float, default=20.0, help="predictions per second")
    parser.add_argument("--phase-seconds", type=float, default=20.0, help="backend phase unit")
    parser.add_argument("--label-delay", type=float, default=5.0, help="seconds until a label")
    parser.add_argument(
        "--max-stored", type=int, default=1500, help="MONITOR_MAX_STORED_PREDICTIONS"
    )
    parser.add_argument("--ttl-seconds", type=float, default=120.0, help="MONITOR_PREDICTION_TTL")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args(argv)
    if args.minutes < 3:
        parser.error("--minutes must be at least 3: resources are compared minute 2 to the last")
    with tempfile.TemporaryDirectory(prefix="soak-") as workdir:
        return 0 if run(args, Path(workdir)) else 1


if __name__ == "__main__":
    sys.exit(main())
