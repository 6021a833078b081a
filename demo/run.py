"""``make demo``: serve the demo model and show latency, quality, fairness and drift moving.

Runs four phases of live traffic against a real ``bentoml serve`` with 2 workers:
a baseline, a drift phase (transaction amounts triple), a bias phase (true labels
in one region flip, so the model gets worse for that group) and a rollout (a
retrained version, worse, serves 30% of requests from a second server on the same
store; the comparison since the rollout began, with its anytime-valid interval, moves
below 0 as labels arrive). Labels come
back late, in batches, with some duplicates and unknown ids, like a real
feedback pipeline. Prints a live table, a per-phase summary and the final window,
and writes ``demo-output/history.json`` (plus ``chart.png`` when matplotlib is there).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from demo.backends import DemoBackends
from demo.chart import write_chart
from demo.page import PageShots, page_url
from demo.report import (
    FULL_WINDOW,
    LIVE_WINDOW,
    TABLE_HEADER,
    TABLE_LEGEND,
    headline,
    percentile,
    rollout_text,
    summarise,
    table_row,
)
from demo.traffic import LabelPipeline, Stats, predict_batch
from harness.postgres import PostgresCluster
from harness.serving import REPO, Server
from service.model_store import store_model
from service.train import DEFAULT_MODEL, Shift, make_dataset, save, train


@dataclass(frozen=True)
class Phase:
    """A stretch of traffic with one data distribution."""

    name: str
    shift: Shift
    canary_share: float = 0.0
    """Share of requests sent to the retrained version (the rollout phase)."""
    length: float = 1.0
    """Rows of this phase, as a multiple of ``--rows-per-phase``."""


PHASES = (
    Phase("baseline", Shift()),
    Phase("drift", Shift(amount_scale=3.0)),
    Phase("bias", Shift(flip_region="south", flip_rate=0.45)),
    # Twice as long: the anytime interval needs labels on both sides to leave 0.
    Phase("rollout", Shift(), canary_share=0.3, length=2.0),
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
        env = {**env, **backends.env}
        store_url = f"sqlite:///{workdir / 'store.db'}"  # Server's own default
        if args.replicas == 1:
            print(f"serving with 2 workers (store {workdir / 'store.db'}) ...", flush=True)
            server = stack.enter_context(Server(workdir, home, env, home=home))
            client = label_client = stack.enter_context(server.client())
            print(f"listening on {server.base_url}: POST /predict, POST /feedback, GET /monitor")
        else:
            client, label_client, store_url = _replicas(stack, workdir, home, tag, env)
        page = page_url(str(client.base_url).rstrip("/"))
        print(f"  the monitoring page, live during the run: {page}")
        for line in backends.lines:
            print(f"  {line}")
        canary = Canary(stack, workdir, home, env, store_url)
        shots = PageShots(stack, page, Path(args.screenshots)) if args.screenshots else None
        _traffic(args, client, label_client, canary, stats, history, backends.watch_alerts, shots)
        if shots is not None:
            print("page screenshots: " + ", ".join(str(p) for p in shots.taken))
        history["backends"] = backends.summary()
        if args.hold > 0:
            print(f"\nholding for {args.hold:.0f}s so you can browse the URLs above (Ctrl-C ends)")
            print(f"  the monitoring page: {page}")
            with contextlib.suppress(KeyboardInterrupt):
                time.sleep(args.hold)
    return _finish(history, stats, out)


def _replicas(
    stack: contextlib.ExitStack, workdir: Path, home: Path, tag: str, env: dict[str, str]
) -> tuple[httpx.Client, httpx.Client, str]:
    """Two replicas on a private PostgreSQL: predictions go to A, labels to B."""
    cluster = stack.enter_context(PostgresCluster.start_new())
    url = cluster.create_database("monitor")
    print(f"PostgreSQL on 127.0.0.1:{cluster.port} (private cluster, removed at the end)")
    servers = []
    for name in ("a", "b"):
        replica_home = model_home(home, tag, workdir / f"home-{name}")
        replica_env = {
            **env,
            "MONITOR_STORE_URL": url,
            "MONITOR_SPOOL_DIR": str(workdir / f"spool-{name}"),
        }
        servers.append(
            stack.enter_context(
                Server(workdir / f"replica-{name}", home, replica_env, home=replica_home)
            )
        )
    a, b = servers
    print(f"replica A {a.base_url} takes predictions and GET /monitor; replica B {b.base_url}")
    print("takes the labels: every label joins a prediction the other replica made")
    return stack.enter_context(a.client()), stack.enter_context(b.client()), url


class Canary:
    """The rollout: a retrained version served by a second server on the same store."""

    def __init__(
        self,
        stack: contextlib.ExitStack,
        workdir: Path,
        home: Path,
        env: dict[str, str],
        store_url: str,
    ) -> None:
        self._stack, self._workdir, self._home = stack, workdir, home
        self._env = {**env, "MONITOR_STORE_URL": store_url}
        self.client: httpx.Client | None = None
        self.tag = ""
        # Trained and started while the earlier phases run: the rollout starts at once.
        self._ready = ThreadPoolExecutor(1).submit(self._deploy)

    def deploy(self) -> httpx.Client:
        """The retrained version's client, once its server is up."""
        return self._ready.result()

    def _deploy(self) -> httpx.Client:
        """Save the retrained version, serve it beside the first; its client."""
        if self.client is None:
            estimator, spec = train(DEFAULT_MODEL, seed=8, mislabelled=0.6)
            tag = store_model(estimator, spec)
            self.tag = tag
            env = {
                **self._env,
                "MONITOR_MODEL": tag,
                "MONITOR_SPOOL_DIR": str(self._workdir / "spool-canary"),
                "MONITOR_PROMETHEUS_PORT": "",  # the first server's workers are scraped
            }
            home = model_home(self._home, tag, self._workdir / "home-canary")
            server = Server(self._workdir / "canary", self._home, env, home=home)
            self.client = self._stack.enter_context(self._stack.enter_context(server).client())
        return self.client


def model_home(home: Path, tag: str, dest: Path) -> Path:
    """A BENTOML_HOME of its own holding only the model ``tag`` (one per replica)."""
    name, version = tag.split(":")
    shutil.copytree(home / "models" / name / version, dest / "models" / name / version)
    (dest / "models" / name / "latest").write_text(version)
    return dest


def _traffic(
    args: argparse.Namespace,
    client: httpx.Client,
    label_client: httpx.Client,
    canary: Canary,
    stats: Stats,
    history: dict[str, Any],
    watch_alerts: Callable[[float], list[str]],
    shots: PageShots | None = None,
) -> None:
    """The phases, then the last labels; records into ``history`` (and the page, with shots)."""
    labels = LabelPipeline(label_client, stats, delay=args.label_delay, seed=args.seed).start()
    started = time.monotonic()
    print(TABLE_LEGEND)
    print(TABLE_HEADER)
    with ThreadPoolExecutor(args.concurrency) as pool:
        for index, phase in enumerate(PHASES):
            targets = [client]
            if phase.canary_share:
                targets.append(canary.deploy())
                print(
                    f"      (rollout: {canary.tag}, retrained on a broken label feed, takes "
                    f"{phase.canary_share:.0%} of the requests beside the first version)"
                )
            history["phases"].append({"name": phase.name, "start": time.monotonic() - started})
            _drive(phase, index, args, pool, targets, stats, labels, started, history, watch_alerts)
            history["phases"][-1]["end"] = time.monotonic() - started
            if shots is not None:
                shots.take(phase.name)  # as the phase ends, its traffic still in the window
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
        "p50_ms": percentile(stats.latencies_ms, 0.5),
        "p99_ms": percentile(stats.latencies_ms, 0.99),
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
    targets: list[httpx.Client],
    stats: Stats,
    labels: LabelPipeline,
    started: float,
    history: dict[str, Any],
    watch_alerts: Callable[[float], list[str]],
) -> None:
    rng = random.Random(args.seed + index)
    client = targets[0]
    rows = round(args.rows_per_phase * phase.length)
    instances, truth = make_dataset(rows, args.seed + 100 * index, shift=phase.shift)
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
        target = targets[-1] if rng.random() < phase.canary_share else client
        futures.append(pool.submit(predict_batch, target, stats, labels, batch, batch_truth))
        now = time.monotonic()
        if now >= next_print:
            snap = client.get("/monitor").json()
            h = headline(snap, LIVE_WINDOW)
            rps = (stats.requests - last_requests) / (now - last_print)
            last_requests, last_print = stats.requests, now
            firing = watch_alerts(now - started)
            row = table_row(now - started, phase.name, stats, rps, h)
            alerts = f"  ! {', '.join(firing)}" if firing else ""
            print(row + rollout_text(h) + alerts, flush=True)
            with stats.lock:
                recent = stats.latencies_ms[-500:]
            history["timeline"].append(
                {
                    "t": now - started,
                    "phase": phase.name,
                    "rps": rps,
                    "p50_ms": percentile(recent, 0.5),
                    "p99_ms": percentile(recent, 0.99),
                    **h,
                }
            )
            next_print = now + 2.0
        time.sleep(max(0.0, phase_start + len(futures) * interval - time.monotonic()))
    for future in futures:
        future.result()


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
    parser.add_argument(
        "--screenshots",
        default="",
        help="a directory: screenshots of the page at the end of each phase (headless chromium)",
    )
    parser.add_argument(
        "--replicas",
        type=int,
        choices=(1, 2),
        default=1,
        help="2: two replicas on a private PostgreSQL (predictions to one, labels to the other)",
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
