"""``make demo``: serve the demo model and show latency, quality, fairness and drift moving.

Runs three phases of live traffic against a real ``bentoml serve`` with 2 workers:
a baseline, a drift phase (transaction amounts triple) and a bias phase (true
labels in one region flip, so the model gets worse for that group). Labels come
back late, in batches, with some duplicates and unknown ids, like a real
feedback pipeline. Prints a live table, a per-phase summary and the final window,
and writes ``demo-output/history.json`` (plus ``chart.png`` when matplotlib is there).
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import json
import os
import random
import shutil
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from demo.backends import DemoBackends
from demo.chart import write_chart
from demo.models import DEFAULT_MODEL, Shift, make_dataset
from service.train import save
from tests.harness.serving import REPO, Server

LIVE_WINDOW = "15s"
FULL_WINDOW = "10m"


@dataclass(frozen=True)
class Phase:
    """A stretch of traffic with one data distribution."""

    name: str
    shift: Shift


PHASES = (
    Phase("baseline", Shift()),
    Phase("drift", Shift(amount_scale=3.0)),
    Phase("bias", Shift(flip_region="south", flip_rate=0.45)),
)


@dataclass
class Stats:
    """Client-side counters, shared by the traffic threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies_ms: list[float] = field(default_factory=list)
    requests: int = 0
    rows: int = 0
    errors: int = 0
    labels_sent: int = 0
    feedback_counts: dict[str, int] = field(default_factory=dict)


class LabelPipeline:
    """Sends each prediction's true label ``delay`` seconds later, in batches.

    Adds ~2% duplicates (same label again) and ~1% unknown ids, as a real
    feedback source would.
    """

    def __init__(self, client: httpx.Client, stats: Stats, *, delay: float, seed: int) -> None:
        self._client = client
        self._stats = stats
        self._delay = delay
        self._rng = random.Random(seed)
        self._queue: list[tuple[float, str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> LabelPipeline:
        """Start the sending thread."""
        self._thread.start()
        return self

    def add(self, ids: Sequence[str], labels: Sequence[Any]) -> None:
        """Queue the true labels of predictions just made."""
        due = time.monotonic() + self._delay
        with self._lock:
            for pid, label in zip(ids, labels, strict=True):
                heapq.heappush(self._queue, (due, pid, label))

    def _due(self, now: float) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        with self._lock:
            while self._queue and self._queue[0][0] <= now and len(items) < 500:
                _, pid, label = heapq.heappop(self._queue)
                items.append({"prediction_id": pid, "label": label})
        extra = [dict(i) for i in items if self._rng.random() < 0.02]
        if items and self._rng.random() < 0.3:
            extra.append(
                {"prediction_id": f"unknown-{self._rng.getrandbits(32):x}", "label": "legit"}
            )
        return items + extra

    def _send(self, items: list[dict[str, Any]]) -> None:
        response = self._client.post("/feedback", json={"labels": items})
        response.raise_for_status()
        counts = response.json()["counts"]
        with self._stats.lock:
            self._stats.labels_sent += len(items)
            for status, n in counts.items():
                self._stats.feedback_counts[status] = self._stats.feedback_counts.get(status, 0) + n

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            items = self._due(time.monotonic())
            if items:
                self._send(items)

    def drain(self) -> None:
        """Send everything still queued now, then stop."""
        self._stop.set()
        self._thread.join()
        while items := self._due(float("inf")):
            self._send(items)

    def pending(self) -> int:
        """Labels not yet sent."""
        with self._lock:
            return len(self._queue)


def _predict(
    client: httpx.Client, stats: Stats, labels: LabelPipeline, batch: list[Any], truth: list[Any]
) -> None:
    started = time.perf_counter()
    try:
        response = client.post("/predict", json={"instances": batch})
        response.raise_for_status()
    except httpx.HTTPError:
        with stats.lock:
            stats.errors += 1
        return
    elapsed = (time.perf_counter() - started) * 1000.0
    ids = [p["prediction_id"] for p in response.json()["predictions"]]
    labels.add(ids, truth)
    with stats.lock:
        stats.latencies_ms.append(elapsed)
        stats.requests += 1
        stats.rows += len(ids)


def _value(node: Any) -> float | None:
    return node.get("value") if isinstance(node, dict) else None


def headline(snapshot: dict[str, Any], window: str) -> dict[str, float | None]:
    """The figures the demo follows, from one window of ``GET /monitor``."""
    w = snapshot["windows"][window]
    fairness = w["fairness"].get("region", {}).get("disparities", {})
    drift = w["drift"]["features"]
    return {
        "n_predictions": w["n_predictions"],
        "n_labels": w["n_labels"],
        "accuracy": _value(w["quality"]["accuracy"]),
        "recall_fraud": _value(w["quality"]["recall"]["per_class"].get("fraud")),
        "estimated_accuracy": _value(w["estimated"].get("accuracy")),
        "estimate_error": w["estimated"].get("error", {}).get("accuracy"),
        "psi_amount": _value(drift.get("amount", {}).get("psi")),
        "psi_hour": _value(drift.get("hour", {}).get("psi")),
        "dp_diff_region": _value(
            fairness.get("demographic_parity_difference", {}).get("between_groups")
        ),
        "eo_diff_region": _value(
            fairness.get("equalized_odds_difference", {})
            .get("worst_case", {})
            .get("between_groups")
        ),
    }


def _fmt(value: float | None, width: int = 7, digits: int = 3) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


TABLE_LEGEND = (
    f"every 2 s; figures over the last {LIVE_WINDOW} (GET /monitor):  labels = labels matched "
    "in the window,  acc = accuracy on them,\n"
    "est.acc = accuracy estimated from scores alone (no labels),  psi.amt / psi.hr = drift "
    "(PSI) of amount / hour,\n"
    "dp.reg / eo.reg = demographic-parity / equalized-odds difference between regions,  "
    "! = Prometheus alerts firing"
)
TABLE_HEADER = (
    f"{'t(s)':>5} {'phase':<9} {'req':>6} {'rows':>6} {'req/s':>6} {'p50ms':>6} {'p99ms':>6} "
    f"{'labels':>6} {'acc':>7} {'est.acc':>7} {'psi.amt':>7} {'psi.hr':>7} {'dp.reg':>7} "
    f"{'eo.reg':>7}"
)


def _row(t: float, phase: str, stats: Stats, rps: float, h: dict[str, float | None]) -> str:
    with stats.lock:
        recent = stats.latencies_ms[-500:]
        requests, rows = stats.requests, stats.rows
    return (
        f"{t:5.0f} {phase:<9} {requests:6d} {rows:6d} {rps:6.0f} "
        f"{_fmt(_percentile(recent, 0.5), 6, 1)} {_fmt(_percentile(recent, 0.99), 6, 1)} "
        f"{int(h['n_labels'] or 0):6d} {_fmt(h['accuracy'])} {_fmt(h['estimated_accuracy'])} "
        f"{_fmt(h['psi_amount'])} {_fmt(h['psi_hour'])} {_fmt(h['dp_diff_region'])} "
        f"{_fmt(h['eo_diff_region'])}"
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Train, serve, drive the phases; return the recorded history."""
    out = Path(args.out)
    workdir = Path(args.workdir)
    shutil.rmtree(workdir, ignore_errors=True)
    print(f"training {DEFAULT_MODEL} into the BentoML model store ...", flush=True)
    tag = save(DEFAULT_MODEL)
    print(f"saved {tag}")
    home = Path(os.environ.get("BENTOML_HOME", Path.home() / "bentoml"))
    passthrough = {k: v for k, v in os.environ.items() if k.startswith("OTEL_")}
    env = {
        "MONITOR_WINDOWS": f"{LIVE_WINDOW},{FULL_WINDOW}",
        "MONITOR_BUCKET_SECONDS": "5",
        "MONITOR_MIN_GROUP_SAMPLES": "50",
        "OTEL_SERVICE_NAME": "model-monitor-demo",
        **passthrough,
    }
    history: dict[str, Any] = {"phases": [], "timeline": [], "phase_summaries": []}
    stats = Stats()
    user_otel = any(k.startswith("OTEL_EXPORTER_OTLP") for k in passthrough)
    with contextlib.ExitStack() as stack:
        backends = stack.enter_context(
            DemoBackends(workdir, user_otel=user_otel, window=LIVE_WINDOW)
        )
        print(f"serving with 2 workers (store {workdir / 'store.db'}) ...", flush=True)
        server = stack.enter_context(Server(workdir, home, {**env, **backends.env}, home=home))
        client = stack.enter_context(server.client())
        print(f"listening on {server.base_url}: POST /predict, POST /feedback, GET /monitor")
        for line in backends.lines:
            print(f"  {line}")
        _traffic(args, client, stats, history, backends.watch_alerts)
        history["backends"] = backends.summary()
        if args.hold > 0:
            print(f"\nholding for {args.hold:.0f}s so you can browse the URLs above (Ctrl-C ends)")
            with contextlib.suppress(KeyboardInterrupt):
                time.sleep(args.hold)
    return _finish(history, stats, out)


def _traffic(
    args: argparse.Namespace,
    client: httpx.Client,
    stats: Stats,
    history: dict[str, Any],
    watch_alerts: Callable[[float], list[str]],
) -> None:
    """The three phases, then the last labels; records into ``history``."""
    labels = LabelPipeline(client, stats, delay=args.label_delay, seed=args.seed).start()
    started = time.monotonic()
    print(TABLE_LEGEND)
    print(TABLE_HEADER)
    with ThreadPoolExecutor(args.concurrency) as pool:
        for index, phase in enumerate(PHASES):
            history["phases"].append({"name": phase.name, "start": time.monotonic() - started})
            _drive(phase, index, args, pool, client, stats, labels, started, history, watch_alerts)
            history["phases"][-1]["end"] = time.monotonic() - started
            wait = args.label_delay + 1.0
            print(f"      ({phase.name} done: {wait:.0f}s for its last labels to arrive)")
            time.sleep(wait)
            snap = client.get("/monitor").json()
            history["phase_summaries"].append({"phase": phase.name, **headline(snap, LIVE_WINDOW)})
    labels.drain()
    history["final"] = client.get("/monitor").json()


def _finish(history: dict[str, Any], stats: Stats, out: Path) -> dict[str, Any]:
    """Client-side figures into ``history``, written to ``out/history.json``."""
    history["client"] = {
        "requests": stats.requests,
        "rows": stats.rows,
        "errors": stats.errors,
        "p50_ms": _percentile(stats.latencies_ms, 0.5),
        "p99_ms": _percentile(stats.latencies_ms, 0.99),
        "labels_sent": stats.labels_sent,
        "feedback": stats.feedback_counts,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "history.json").write_text(json.dumps(history, indent=1))
    return history


def _drive(
    phase: Phase,
    index: int,
    args: argparse.Namespace,
    pool: ThreadPoolExecutor,
    client: httpx.Client,
    stats: Stats,
    labels: LabelPipeline,
    started: float,
    history: dict[str, Any],
    watch_alerts: Callable[[float], list[str]],
) -> None:
    rng = random.Random(args.seed + index)
    instances, truth = make_dataset(args.rows_per_phase, args.seed + 100 * index, shift=phase.shift)
    phase_start = time.monotonic()
    interval = 1.0 / args.rate
    next_print = phase_start + 2.0
    last_requests, last_print = stats.requests, phase_start
    cursor = 0
    futures = []
    while cursor < len(instances):
        size = rng.randint(1, 4)
        batch, batch_truth = instances[cursor : cursor + size], truth[cursor : cursor + size]
        cursor += size
        futures.append(pool.submit(_predict, client, stats, labels, batch, batch_truth))
        now = time.monotonic()
        if now >= next_print:
            snap = client.get("/monitor").json()
            h = headline(snap, LIVE_WINDOW)
            rps = (stats.requests - last_requests) / (now - last_print)
            last_requests, last_print = stats.requests, now
            firing = watch_alerts(now - started)
            row = _row(now - started, phase.name, stats, rps, h)
            print(row + (f"  ! {', '.join(firing)}" if firing else ""), flush=True)
            with stats.lock:
                recent = stats.latencies_ms[-500:]
            history["timeline"].append(
                {
                    "t": now - started,
                    "phase": phase.name,
                    "rps": rps,
                    "p50_ms": _percentile(recent, 0.5),
                    "p99_ms": _percentile(recent, 0.99),
                    **h,
                }
            )
            next_print = now + 2.0
        time.sleep(max(0.0, phase_start + len(futures) * interval - time.monotonic()))
    for future in futures:
        future.result()


def summarise(history: dict[str, Any]) -> str:
    """The closing report: client latency, per-phase shifts, final window."""
    c = history["client"]
    lines = [
        "",
        f"client: {c['requests']} requests, {c['rows']} rows, {c['errors']} errors, "
        f"p50 {c['p50_ms']:.1f} ms, p99 {c['p99_ms']:.1f} ms",
        f"labels sent: {c['labels_sent']}  statuses: {c['feedback']}",
        "",
        f"per phase ({LIVE_WINDOW} window, after that phase's labels arrived; est.err = the "
        "estimate minus the realised accuracy on the same rows, rec.fr = recall of fraud):",
        f"  {'phase':<9} {'acc':>7} {'est.acc':>7} {'est.err':>7} {'rec.fr':>7} {'psi.amt':>7} "
        f"{'psi.hr':>7} {'dp.reg':>7} {'eo.reg':>7}",
    ]
    for s in history["phase_summaries"]:
        lines.append(
            f"  {s['phase']:<9} {_fmt(s['accuracy'])} {_fmt(s['estimated_accuracy'])} "
            f"{_fmt(s['estimate_error'], 7, 3)} {_fmt(s['recall_fraud'])} "
            f"{_fmt(s['psi_amount'])} {_fmt(s['psi_hour'])} "
            f"{_fmt(s['dp_diff_region'])} {_fmt(s['eo_diff_region'])}"
        )
    final = history["final"]
    w = final["windows"][FULL_WINDOW]
    q = w["quality"]
    lines += [
        "",
        f"whole run ({FULL_WINDOW} window): {w['n_predictions']} predictions, "
        f"{w['n_labels']} labels, {final['stored_predictions']} rows stored",
        f"  accuracy {_fmt(_value(q['accuracy']))}  f1(fraud) "
        f"{_fmt(_value(q['f1']['per_class']['fraud']))}  log-loss {_fmt(_value(q['log_loss']))}  "
        f"ROC AUC {_fmt(_value(q['roc_auc']))}",
        "  drift PSI by feature: "
        + ", ".join(f"{k} {_fmt(_value(v['psi']), 0)}" for k, v in w["drift"]["features"].items()),
    ]
    lines += [f"  {line}" for line in history.get("backends", [])]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows-per-phase", type=int, default=2500)
    parser.add_argument("--rate", type=float, default=60.0, help="requests per second")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--label-delay", type=float, default=4.0, help="seconds")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--out", default="demo-output")
    parser.add_argument(
        "--workdir", default=str(REPO / ".monitor" / "demo"), help="store, logs (wiped first)"
    )
    parser.add_argument(
        "--hold", type=float, default=0.0, help="seconds to keep serving after the run"
    )
    args = parser.parse_args(argv)
    history = run(args)
    print(summarise(history))
    out = Path(args.out)
    print(f"\nwrote {out / 'history.json'}")
    threshold = history["final"]["windows"][FULL_WINDOW]["drift"]["psi_threshold"]
    chart = write_chart(history, out / "chart.png", psi_threshold=threshold)
    print(f"wrote {chart}" if chart else "(pip install matplotlib for demo-output/chart.png)")
    return 0 if history["client"]["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
