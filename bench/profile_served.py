"""Where a served prediction's time goes: py-spy on one template worker under wrk load.

Starts the template with one worker (``MONITOR_WORKERS=1``), loads ``POST /predict``
with wrk (1 and 32 rows per request), and meanwhile records the worker with
``py-spy record --format raw --idle`` (collapsed stacks, every thread, waits included).
The samples are summarised as text: how the worker splits its time, the project's
frames (``service/``, ``instrumentation/``) by total and "own" share (own = the deepest
project frame on the stack, so library and C time it calls is charged to it: a
``cursor.execute`` shows as the store method that issued it), the library calls
they spend it in, and a small flame of the request path. Written into
``bench/RESULTS.md`` as "Where the time goes" (between markers).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil  # type: ignore[import-untyped]  # no stubs installed

from bench._common import trained_home
from bench.results import replace_section
from bench.served import RESOURCE, SAMPLE_RATE, _stop_on_sigterm
from bench.wrk import WrkResult, post_script, run_wrk, wrk_path
from harness.otlp import OTLPReceiver
from harness.serving import SERVICE, Server
from service.train import make_dataset

PROJECT = ("service/", "instrumentation/")
PASSTHROUGH = ("service/auth.py", "service/body_limit.py")
"""Project frames that only wrap the whole ASGI app (every request passes through them)."""
REQUEST = "ModelService.predict (service/service.py)"
LIBRARY = "(instrumentation/"
MODEL = "Predictor.classify (service/predictor.py)"
WORKER_MODULE = "_bentoml_impl.worker.service"
WAITS = (
    "Condition.wait (threading.py)",
    "Event.wait (threading.py)",
    "Queue.get (queue.py)",
    "EpollSelector.select (selectors.py)",
    "Thread.join (threading.py)",
    "_wait_for_tstate_lock (threading.py)",
)
"""Leaf frames of a thread that is waiting, not working (with ``--idle`` they are sampled)."""

Stack = tuple[str, ...]


def _is_project(frame: str) -> bool:
    where = frame.rsplit("(", 1)[-1]
    return where.startswith(PROJECT) and not where.startswith(PASSTHROUGH)


def read_raw(path: Path) -> Counter[Stack]:
    """py-spy's raw (collapsed) output: ``frame;frame;… count`` per line."""
    stacks: Counter[Stack] = Counter()
    for line in path.read_text().splitlines():
        text, _, count = line.rpartition(" ")
        if text and count.isdigit():
            stacks[tuple(text.split(";"))] += int(count)
    return stacks


@dataclass
class Summary:
    """Shares of one recording (every share is of ``busy``: samples of a working thread)."""

    rows: int
    load: WrkResult
    total: int
    busy: int
    request: int
    monitoring: int
    model: int
    own: Counter[str] = field(default_factory=Counter)
    inclusive: Counter[str] = field(default_factory=Counter)
    callees: Counter[str] = field(default_factory=Counter)
    tree: Counter[Stack] = field(default_factory=Counter)


def summarise(stacks: Counter[Stack], rows: int, load: WrkResult) -> Summary:
    """Fold collapsed stacks into the shares reported."""
    busy = {s: n for s, n in stacks.items() if s[-1] not in WAITS}
    summary = Summary(
        rows=rows,
        load=load,
        total=sum(stacks.values()),
        busy=sum(busy.values()),
        request=sum(n for s, n in busy.items() if REQUEST in s),
        monitoring=sum(n for s, n in busy.items() if any(LIBRARY in f for f in s)),
        model=sum(n for s, n in busy.items() if MODEL in s),
    )
    for stack, n in busy.items():
        project = [i for i, frame in enumerate(stack) if _is_project(frame)]
        if not project:
            continue
        for frame in set(stack[i] for i in project):
            summary.inclusive[frame] += n
        deepest = project[-1]
        summary.own[stack[deepest]] += n
        if deepest + 1 < len(stack):
            summary.callees[f"{stack[deepest]} → {stack[deepest + 1]}"] += n
        if REQUEST in stack:
            path = tuple(stack[i] for i in project if i >= stack.index(REQUEST))
            for depth in range(1, len(path) + 1):
                summary.tree[path[:depth]] += n
    return summary


def _pct(n: int, of: int) -> str:
    return f"{100.0 * n / of:5.1f}%" if of else "  n/a"


def _top(counter: Counter[str], of: int, limit: int) -> Iterable[str]:
    for frame, n in counter.most_common(limit):
        yield f"  {_pct(n, of)}  {frame}"


def render(summary: Summary, *, limit: int = 12, min_share: float = 0.01) -> str:
    """A text block for one recording."""
    s = summary
    project = sum(s.own.values())
    lines = [
        f"rows={s.rows}: {s.load.rps:.0f} req/s under profiling, {s.total} samples "
        f"({s.busy} working, i.e. not parked in a wait). Of working samples: request handler "
        f"`ModelService.predict` {_pct(s.request, s.busy).strip()} (model call "
        f"`Predictor.classify` {_pct(s.model, s.busy).strip()}); any `instrumentation/` frame "
        f"on the stack (monitoring, any thread) {_pct(s.monitoring, s.busy).strip()}; "
        "project frames "
        f"(service/ + instrumentation/, any thread) {_pct(project, s.busy).strip()}, the rest "
        f"(BentoML, uvicorn, starlette, pydantic, OTel export threads) "
        f"{_pct(s.busy - project, s.busy).strip()}.",
        "",
        "Request path flame (project frames only; share of working samples):",
    ]
    for path, n in sorted(s.tree.items()):
        if n >= min_share * s.busy and len(path) <= 5:
            lines.append(f"  {_pct(n, s.busy)}  {'  ' * (len(path) - 1)}{path[-1]}")
    lines += ["", "Project frames by total (inclusive) share:"]
    lines += _top(s.inclusive, s.busy, limit)
    lines += [
        "",
        "Project frames by own share (deepest project frame; its library calls included):",
    ]
    lines += _top(s.own, s.busy, limit)
    lines += ["", "Where that own time goes (project frame → the library call it is in):"]
    lines += _top(s.callees, s.busy, limit)
    return "\n".join(lines)


def _worker_pid(server: Server) -> int:
    assert server.proc is not None
    for child in psutil.Process(server.proc.pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if WORKER_MODULE in child.cmdline():
                return int(child.pid)
    raise RuntimeError(f"no BentoML worker under pid {server.proc.pid}")


def py_spy() -> str:
    """The py-spy executable (installed with the ``bench`` extra)."""
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise RuntimeError("py-spy not found: pip install -e '.[bench]'")
    return found


def record(server: Server, script: Path, out: Path, *, seconds: float, rate: int) -> WrkResult:
    """Load ``server`` with wrk while py-spy records its worker for ``seconds``."""
    pid = _worker_pid(server)
    loaded: list[WrkResult] = []
    load = threading.Thread(
        target=lambda: loaded.append(
            run_wrk(f"{server.base_url}/predict", script, seconds=seconds + 2)
        )
    )
    load.start()
    try:
        subprocess.run(
            [py_spy(), "record", "-p", str(pid), "-d", f"{seconds:g}", "-r", str(rate),
             "--format", "raw", "--idle", "--nolineno", "-o", str(out)],
            check=True, capture_output=True, timeout=seconds + 30,
        )  # fmt: skip
    finally:
        load.join()
    return loaded[0]


def profile(
    rows_list: Sequence[int], *, seconds: float, rate: int, otlp: bool, keep: Path | None
) -> list[Summary]:
    """Record the template at each row count; return one summary per count."""
    home = trained_home()
    summaries = []
    try:
        with (
            tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp,
            contextlib.ExitStack() as stack,
        ):
            workdir = Path(tmp)
            env = {"MONITOR_WORKERS": "1", "MONITOR_TRACE_SAMPLE_RATE": SAMPLE_RATE,
                   RESOURCE: "bench.variant=template"}  # fmt: skip
            if otlp:
                receiver = stack.enter_context(OTLPReceiver())
                env |= {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}  # fmt: skip
            server = stack.enter_context(Server(workdir / "template", home, env, target=SERVICE))
            for rows in rows_list:
                body = json.dumps({"instances": make_dataset(rows, seed=rows)[0]}).encode()
                script = post_script(body, workdir, f"predict-{rows}")
                run_wrk(f"{server.base_url}/predict", script, seconds=2)  # warm-up
                out = workdir / f"py-spy-{rows}.txt"
                load = record(server, script, out, seconds=seconds, rate=rate)
                if keep is not None:
                    keep.mkdir(parents=True, exist_ok=True)
                    shutil.copy(out, keep / out.name)
                summaries.append(summarise(read_raw(out), rows, load))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return summaries


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--seconds", type=float, default=20.0, help="recording per row count")
    parser.add_argument("--rate", type=int, default=200, help="samples per second")
    parser.add_argument("--otlp", action="store_true", help="export to a local OTLP receiver")
    parser.add_argument("--keep", type=Path, help="copy the raw py-spy files here")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    wrk_path()
    py_spy()
    _stop_on_sigterm()
    summaries = profile(
        args.rows, seconds=args.seconds, rate=args.rate, otlp=args.otlp, keep=args.keep
    )
    command = "python -m bench.profile_served " + " ".join(sys.argv[1:] if argv is None else argv)
    text = "\n".join(
        [
            f"`{command.strip()}` — one worker, wrk `-t1 -c8`, OTLP export "
            f"{'on' if args.otlp else 'off'}, py-spy {args.rate} Hz, {args.seconds:g} s per "
            "row count:",
            "",
            "```text",
            "\n\n".join(render(s) for s in summaries),
            "```",
        ]
    )
    print(text)
    if not args.no_write:
        replace_section("profile", text)


if __name__ == "__main__":
    main()
