"""Served overhead: the template vs a bare BentoML service, both under ``bentoml serve``.

The bare service (``bench/bare_service.py``) serves the same saved model through the
same ``Predictor`` and schemas, without monitoring. Each variant runs in its own
``bentoml serve`` process group (own BENTOML_HOME copy, port, log); ``wrk`` loads one
at a time from a separate process, in rounds alternating bare, template, bare, …;
figures are medians over valid rounds, and the headline is the template's ratio to
the bare service measured in the same run (the machine is shared: absolute numbers
move from run to run, ratios much less). A round with any non-2xx response or socket
error is reported and left out of the medians.

Matrix: store (``--store``: the SQLite default, and PostgreSQL) × rows per request
(1, 32) × workers (``MONITOR_WORKERS`` 1, 2) × OTLP export off / on (a gRPC receiver
in this process; ``MONITOR_TRACE_SAMPLE_RATE=0.1``; the bare service then exports
BentoML's own spans at the same rate). PostgreSQL is a private cluster on 127.0.0.1
(``harness/postgres.py``), started for the run and stopped at its end; the
template reaches it through ``MONITOR_STORE_URL``, a schema per server. The bare
service has no store, so every cell measures it again beside the template.
``--quick`` covers one worker (the issue's setting) with shorter rounds, and on
PostgreSQL the OTLP-on cells only, 3 rounds each: under 5 minutes. The full run
measures PostgreSQL with one worker too. Two-worker ratios are noisier than the
monitoring they measure: wrk's 8 keep-alive connections are accepted by the
workers unevenly (in some rounds all by one), which halves or doubles a round's
throughput whichever the variant.

CPU per request: each round reads the user + system CPU seconds of the serving
process tree (the ``bentoml serve`` parent and its workers) before and after, and
divides by the requests served; on PostgreSQL also the database server's tree (the
postmaster, its backends and background processes) during the template's rounds.
Unlike req/s, it does not charge the template for the database's and wrk's CPU on
these shared cores: it is what a worker spends, and what a team sizes its
database by.

Writes its figures into ``bench/RESULTS.md`` (between markers; the rest is kept).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from bench._common import store_urls, trained_home
from bench.proc_cpu import tree_cpu_seconds
from bench.results import RESULTS, replace_section
from bench.wrk import WrkResult, post_script, run_wrk, wrk_path
from harness.otlp import OTLPReceiver
from harness.serving import SERVICE, Server
from service.train import make_dataset

BARE = "bench.bare_service:BareService"
VARIANTS = (("bare", BARE), ("template", SERVICE))
SAMPLE_RATE = "0.1"
RESOURCE = "OTEL_RESOURCE_ATTRIBUTES"
VARIANT = "bench.variant"
STORES = ("sqlite", "postgresql")


@dataclass(frozen=True)
class Plan:
    """What one run measures."""

    rows: tuple[int, ...]
    workers: tuple[int, ...]
    otlp: tuple[bool, ...]
    rounds: int
    seconds: float
    warmup_s: float
    connections: int


QUICK = Plan(rows=(1, 32), workers=(1,), otlp=(False, True), rounds=5, seconds=3, warmup_s=2,
             connections=8)  # fmt: skip
FULL = Plan(rows=(1, 32), workers=(1, 2), otlp=(False, True), rounds=5, seconds=8, warmup_s=3,
            connections=8)  # fmt: skip
QUICK_POSTGRES = Plan(**{**QUICK.__dict__, "otlp": (True,), "rounds": 3})
"""PostgreSQL's quick cells: export on, 3 rounds (--quick < 5 min)."""
FULL_POSTGRES = Plan(**{**FULL.__dict__, "workers": (1,)})
"""PostgreSQL's full cells: one worker (the issue's setting), export off and on."""


@dataclass
class Cell:
    """One point of the matrix: every round of both variants."""

    rows: int
    workers: int
    otlp: bool
    store: str = "sqlite"
    rounds: dict[str, list[WrkResult]] = field(default_factory=lambda: {"bare": [], "template": []})
    spans: dict[str, int] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=lambda: {"bare": [], "template": []})
    """CPU seconds per request of the serving process tree, per valid round."""
    db_cpu: list[float] = field(default_factory=list)
    """The database server's CPU seconds per request, per valid template round."""

    def valid(self, variant: str) -> list[WrkResult]:
        """The rounds of ``variant`` without errors."""
        return [r for r in self.rounds[variant] if r.valid]

    def median(self, variant: str, figure: str) -> float | None:
        """Median of ``figure`` (``rps``, ``p50``, ``p99``) over the valid rounds, or None."""
        values = [getattr(r, figure) for r in self.valid(variant)]
        return statistics.median(values) if values else None

    def paired(self) -> list[float]:
        """Per-round req/s ratios (template round i / bare round i), both rounds valid."""
        return [
            t.rps / b.rps
            for b, t in zip(self.rounds["bare"], self.rounds["template"], strict=False)
            if b.valid and t.valid
        ]

    def cpu_median(self, variant: str) -> float | None:
        """Median CPU seconds per request of ``variant``'s serving processes, or None."""
        return statistics.median(self.cpu[variant]) if self.cpu[variant] else None

    def cpu_ratio(self) -> float | None:
        """Template over bare CPU per request (medians)."""
        bare, template = self.cpu_median("bare"), self.cpu_median("template")
        return None if bare is None or template is None else template / bare

    def db_cpu_median(self) -> float | None:
        """Median database CPU seconds per template request (PostgreSQL), or None."""
        return statistics.median(self.db_cpu) if self.db_cpu else None

    def ratio(self, figure: str) -> float | None:
        """Template median over bare median for ``figure``."""
        bare, template = self.median("bare", figure), self.median("template", figure)
        return None if bare is None or template is None else template / bare


def _stop_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so every ``with Server`` block stops its server."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def _check(server: Server, body: bytes, rows: int) -> None:
    """One request by hand: 200 and one prediction per row, before any round counts."""
    with server.client() as client:
        response = client.post(
            "/predict", content=body, headers={"content-type": "application/json"}
        )
    if response.status_code != 200 or len(response.json()["predictions"]) != rows:
        raise RuntimeError(f"{server.args}: {response.status_code} {response.text[:300]}")


def _servers(
    stack: contextlib.ExitStack,
    workdir: Path,
    home: Path,
    workers: int,
    endpoint: str | None,
    store_url: Callable[[str], str | None],
) -> dict[str, Server]:
    env = {"MONITOR_WORKERS": str(workers), "MONITOR_TRACE_SAMPLE_RATE": SAMPLE_RATE}
    if endpoint is not None:
        env |= {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    tag = f"w{workers}_{'otlp' if endpoint else 'off'}"
    url = store_url(f"served_{tag}")
    if url is not None:
        env["MONITOR_STORE_URL"] = url
    return {
        # The resource attribute tells the variants' spans apart at the receiver.
        name: stack.enter_context(
            Server(
                workdir / f"{name}-{tag}",
                home,
                env | {RESOURCE: f"{VARIANT}={name}"},
                target=target,
            )  # fmt: skip
        )
        for name, target in VARIANTS
    }


def _receiver(stack: contextlib.ExitStack, on: bool) -> OTLPReceiver | None:
    return stack.enter_context(OTLPReceiver()) if on else None


def measure(plans: Mapping[str, Plan], workdir: Path, log: bool = True) -> list[Cell]:
    """Run the matrix of each store's plan; every server, receiver and cluster is stopped."""
    home = trained_home()
    try:
        cells: list[Cell] = []
        for store, plan in plans.items():
            with store_urls(store) as (store_url, db_pid):
                cells += _measure(plan, workdir / store, home, store, store_url, db_pid, log)
        return cells
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _measure(
    plan: Plan,
    workdir: Path,
    home: Path,
    store: str,
    store_url: Callable[[str], str | None],
    db_pid: int | None,
    log: bool,
) -> list[Cell]:
    workdir.mkdir(parents=True, exist_ok=True)
    bodies = {n: json.dumps({"instances": make_dataset(n, seed=n)[0]}).encode() for n in plan.rows}
    scripts = {n: post_script(body, workdir, f"predict-{n}") for n, body in bodies.items()}
    cells: list[Cell] = []
    for workers in plan.workers:
        for otlp in plan.otlp:
            with contextlib.ExitStack() as stack:
                receiver = _receiver(stack, otlp)
                endpoint = receiver.endpoint if receiver else None
                servers = _servers(stack, workdir, home, workers, endpoint, store_url)
                for rows in plan.rows:
                    cell = Cell(rows, workers, otlp, store)
                    cells.append(cell)
                    _run_cell(
                        cell, plan, servers, scripts[rows], bodies[rows], receiver, db_pid, log
                    )
    return cells


def _run_cell(
    cell: Cell,
    plan: Plan,
    servers: dict[str, Server],
    script: Path,
    body: bytes,
    receiver: OTLPReceiver | None,
    db_pid: int | None,
    log: bool,
) -> None:
    if receiver is not None:
        receiver.clear()
    for server in servers.values():
        _check(server, body, cell.rows)
        run_wrk(f"{server.base_url}/predict", script, seconds=plan.warmup_s,
                connections=plan.connections)  # fmt: skip
    for index in range(plan.rounds):
        for name, server in servers.items():
            result = _round(cell, name, server, plan, script, db_pid)
            if log:
                flag = "" if result.valid else (
                    f"  INVALID: {result.non_2xx} non-2xx, {result.socket_errors} socket errors"
                )  # fmt: skip
                print(
                    f"  {cell.store:<10} w={cell.workers} otlp={'on ' if cell.otlp else 'off'}"
                    f" rows={cell.rows:<3}"
                    f" round {index + 1} {name:<8} {result.rps:8.1f} req/s"
                    f"  p50 {result.p50 * 1e3:7.2f} ms  p99 {result.p99 * 1e3:7.2f} ms"
                    f"  CPU {_fmt(cell.cpu[name][-1] if result.valid else None, 1e3, 2)} ms/req"
                    f"{flag}",
                    flush=True,
                )
    if receiver is not None:
        # Spans exported so far (BentoML's batch processor may still hold the last 5 s).
        for resource, _ in receiver.spans():
            name = str(resource.get(VARIANT))
            cell.spans[name] = cell.spans.get(name, 0) + 1


def _round(
    cell: Cell, name: str, server: Server, plan: Plan, script: Path, db_pid: int | None
) -> WrkResult:
    """One wrk round of ``name``, with the CPU its processes (and the database) spent on it."""
    assert server.proc is not None
    db = db_pid is not None and name == "template"
    before = tree_cpu_seconds(server.proc.pid)
    db_before = tree_cpu_seconds(db_pid) if db and db_pid is not None else 0.0
    result = run_wrk(f"{server.base_url}/predict", script, seconds=plan.seconds,
                     connections=plan.connections)  # fmt: skip
    spent = tree_cpu_seconds(server.proc.pid) - before
    db_spent = tree_cpu_seconds(db_pid) - db_before if db and db_pid is not None else 0.0
    cell.rounds[name].append(result)
    if result.valid:
        cell.cpu[name].append(spent / result.requests)
        if db:
            cell.db_cpu.append(db_spent / result.requests)
    return result


def _fmt(value: float | None, scale: float = 1.0, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value * scale:.{digits}f}"


def table(cells: Sequence[Cell]) -> str:
    """The figures as a Markdown table: ratios first, medians beside them."""
    head = (
        "| store | workers | OTLP | rows | req/s ×bare | per-round req/s ×bare (min–max) "
        "| p50 ×bare | p99 ×bare "
        "| CPU/req ×bare | CPU ms/req bare / tmpl | DB CPU ms/req "
        "| req/s bare / tmpl | p50 ms bare / tmpl | p99 ms bare / tmpl | valid rounds b / t |"
    )
    lines = [head, "|" + "---|" * 15]
    for c in cells:
        med = c.median
        lines.append(
            f"| {c.store} | {c.workers} | {'on' if c.otlp else 'off'} | {c.rows} "
            f"| **{_fmt(c.ratio('rps'), digits=2)}** "
            f"| {_fmt(min(c.paired(), default=None), digits=2)}–"
            f"{_fmt(max(c.paired(), default=None), digits=2)} "
            f"| **{_fmt(c.ratio('p50'), digits=2)}** "
            f"| **{_fmt(c.ratio('p99'), digits=2)}** "
            f"| **{_fmt(c.cpu_ratio(), digits=2)}** "
            f"| {_fmt(c.cpu_median('bare'), 1e3, 2)} / {_fmt(c.cpu_median('template'), 1e3, 2)} "
            f"| {_fmt(c.db_cpu_median(), 1e3, 2)} "
            f"| {_fmt(med('bare', 'rps'))} / {_fmt(med('template', 'rps'))} "
            f"| {_fmt(med('bare', 'p50'), 1e3, 2)} / {_fmt(med('template', 'p50'), 1e3, 2)} "
            f"| {_fmt(med('bare', 'p99'), 1e3, 2)} / {_fmt(med('template', 'p99'), 1e3, 2)} "
            f"| {len(c.valid('bare'))}/{len(c.rounds['bare'])} "
            f"/ {len(c.valid('template'))}/{len(c.rounds['template'])} |"
        )
    return "\n".join(lines)


def invalid_rounds(cells: Sequence[Cell]) -> list[str]:
    """One line per round left out of the medians, saying why."""
    return [
        f"{c.store} workers={c.workers} otlp={'on' if c.otlp else 'off'} rows={c.rows} "
        f"{name} round {i + 1}: {r.non_2xx} non-2xx, {r.socket_errors} socket errors/timeouts"
        for c in cells
        for name, rounds in c.rounds.items()
        for i, r in enumerate(rounds)
        if not r.valid
    ]


def machine() -> str:
    """Where the figures were measured: cores, CPU, Python, BentoML, wrk."""
    import bentoml

    nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout.strip()
    wrk = subprocess.run([wrk_path(), "--version"], capture_output=True, text=True, check=False)
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    load = Path("/proc/loadavg").read_text().split()[:3]
    return (
        f"- `nproc`: {nproc} ({cpu}); shared with other jobs while measuring "
        f"(load average at the end: {' '.join(load)})\n"
        f"- `python -V`: Python {platform.python_version()}\n"
        f"- bentoml {bentoml.__version__}; {(wrk.stdout or wrk.stderr).splitlines()[0]}"
    )


def report(cells: Sequence[Cell], plan: Plan, command: str, elapsed_s: float) -> str:
    """The Markdown section written into RESULTS.md (``plan``: the rounds, as every store's)."""
    spans = ", ".join(
        f"{c.store} rows={c.rows} w={c.workers}: bare {c.spans.get('bare', 0)}, "
        f"template {c.spans.get('template', 0)}"
        for c in cells
        if c.otlp
    )
    bad = invalid_rounds(cells)
    return "\n".join(
        [
            f"Measured {time.strftime('%Y-%m-%d %H:%M %Z')} in {elapsed_s / 60:.1f} min with",
            f"`{command}`:",
            "",
            machine(),
            (
                f"- wrk `-t1 -c{plan.connections} -d{plan.seconds:g}s --latency` POST /predict, "
                f"{_rounds(cells)} rounds per variant alternating bare/template after a "
                f"{plan.warmup_s:g} s warm-up each; medians over valid rounds"
            ),
            "- store: " + "; ".join(_store_note(store) for store in _stores_of(cells)),
            "",
            table(cells),
            "",
            "`×bare` = template median / bare median, measured in the same run (req/s below 1 "
            "and latency above 1 are the cost of monitoring). CPU/req: user + system CPU of "
            "the serving process tree over a round ÷ requests served; DB CPU/req: the "
            "PostgreSQL server's, during the template's rounds.",
            f"Spans received by the OTLP receiver (proof export was on): {spans or 'n/a'}.",
            "Rounds left out (non-2xx or socket errors): "
            + ("none." if not bad else "\n" + "\n".join(f"- {line}" for line in bad)),
        ]
    )


def _rounds(cells: Sequence[Cell]) -> str:
    """Rounds per variant and cell: ``5``, or ``5 (postgresql: 3)`` where stores differ."""
    per_store = {c.store: len(c.rounds["bare"]) for c in cells}
    first = next(iter(per_store.values()), 0)
    others = [f"{store}: {n}" for store, n in per_store.items() if n != first]
    return f"{first} ({', '.join(others)})" if others else str(first)


def _stores_of(cells: Sequence[Cell]) -> list[str]:
    return list(dict.fromkeys(c.store for c in cells))


def _store_note(store: str) -> str:
    if store == "sqlite":
        return "SQLite, a file per server"
    return (
        f"PostgreSQL {_server_version()} on 127.0.0.1, a private cluster, a schema per "
        "server (`synchronous_commit` on)"
    )


def _server_version() -> str:
    from harness.postgres import find_bindir

    found = subprocess.run(
        [str(find_bindir() / "postgres"), "--version"], capture_output=True, text=True, check=False
    )
    words = found.stdout.split()  # "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
    return words[2] if len(words) > 2 else "(version unknown)"


def main(argv: Sequence[str] | None = None) -> list[Cell]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1 worker only, 5 rounds of 3 s; PostgreSQL: OTLP on only, 3 rounds",
    )
    parser.add_argument(
        "--store",
        choices=[*STORES, "both"],
        default="both",
        help="the template's store (default: both, SQLite first)",
    )
    parser.add_argument("--rounds", type=int, help="rounds per variant and cell")
    parser.add_argument("--seconds", type=float, help="wrk duration of one round")
    parser.add_argument(
        "--no-write", action="store_true", help=f"print only; leave {RESULTS.name} alone"
    )
    args = parser.parse_args(argv)
    stores = STORES if args.store == "both" else (args.store,)
    plans = {
        store: {
            ("postgresql", True): QUICK_POSTGRES,
            ("postgresql", False): FULL_POSTGRES,
            ("sqlite", True): QUICK,
            ("sqlite", False): FULL,
        }[store, args.quick]
        for store in stores
    }
    if args.rounds or args.seconds:
        plans = {
            store: Plan(
                **{
                    **plan.__dict__,
                    "rounds": args.rounds or plan.rounds,
                    "seconds": args.seconds or plan.seconds,
                }
            )  # fmt: skip
            for store, plan in plans.items()
        }
    wrk_path()  # fail before training and serving if it is missing
    _stop_on_sigterm()
    command = "python -m bench.served " + shlex.join(sys.argv[1:] if argv is None else argv)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-served-") as tmp:
        cells = measure(plans, Path(tmp))
    text = report(cells, plans[stores[0]], command.strip(), time.monotonic() - started)
    print()
    print(text)
    if not args.no_write:
        replace_section("served", text)
        print(f"\nwritten to {RESULTS}")
    return cells


if __name__ == "__main__":
    main()
