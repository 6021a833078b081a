"""Adaptive batching's cost and benefit: the template with and without it, side by side.

Both variants are the same template under ``bentoml serve`` (2 workers, own
BENTOML_HOME copy, store, port), one with ``MONITOR_ADAPTIVE_BATCHING=1``. ``wrk``
loads one at a time with 32 concurrent connections, in rounds alternating
unbatched, batched, unbatched, …; figures are medians over valid rounds and the
headline is batched / unbatched measured in the same run (the machine is shared).

    python -m bench.batching [--rounds 5] [--seconds 5] [--rows 1]

Prints a table; writes nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench._common import trained_home
from bench.wrk import WrkResult, post_script, run_wrk
from harness.serving import Server
from service.train import make_dataset

VARIANTS = {"unbatched": "0", "batched": "1"}
CONNECTIONS = 32


def measure(rounds: int, seconds: float, rows: int, workdir: Path) -> dict[str, list[WrkResult]]:
    """Every round of both variants; every server is stopped on the way out."""
    home = trained_home()
    try:
        return _measure(rounds, seconds, rows, workdir, home)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _measure(
    rounds: int, seconds: float, rows: int, workdir: Path, home: Path
) -> dict[str, list[WrkResult]]:
    body = json.dumps({"instances": make_dataset(rows, seed=rows)[0]}).encode()
    script = post_script(body, workdir, f"predict-{rows}")
    results: dict[str, list[WrkResult]] = {name: [] for name in VARIANTS}
    with contextlib.ExitStack() as stack:
        servers = {
            name: stack.enter_context(
                Server(
                    workdir / name,
                    home,
                    {
                        "MONITOR_WORKERS": "2",
                        "MONITOR_TRACE_SAMPLE_RATE": "0.1",
                        "MONITOR_ADAPTIVE_BATCHING": flag,
                    },
                )
            )
            for name, flag in VARIANTS.items()
        }
        for server in servers.values():  # warm-up, and the dispatcher's own training
            run_wrk(f"{server.base_url}/predict", script, seconds=3, connections=CONNECTIONS)
        for index in range(rounds):
            for name, server in servers.items():
                result = run_wrk(
                    f"{server.base_url}/predict", script, seconds=seconds, connections=CONNECTIONS
                )
                results[name].append(result)
                print(
                    f"  round {index + 1} {name:<9} {result.rps:7.1f} req/s  "
                    f"p50 {result.p50 * 1e3:6.1f} ms  p99 {result.p99 * 1e3:6.1f} ms"
                    + ("" if result.valid else f"  INVALID ({result.non_2xx} non-2xx)"),
                    flush=True,
                )
        print(f"  batched: {_requests_per_call(servers['batched'])}")
    return results


def _requests_per_call(server: Server) -> str:
    """Mean requests per batched model call, from BentoML's ``adaptive_batch_size`` histogram."""
    with server.client() as client:
        text = client.get("/metrics").text
    sums = {"sum": 0.0, "count": 0.0}
    for line in text.splitlines():
        for key in sums:
            if line.startswith(f"bentoml_service_adaptive_batch_size_{key}{{"):
                sums[key] += float(line.rsplit(" ", 1)[1])
    if not sums["count"]:
        return "no batched calls seen in /metrics"
    return (
        f"{sums['count']:.0f} model calls, {sums['sum'] / sums['count']:.1f} requests "
        "per call on average"
    )


def _median(results: Sequence[WrkResult], figure: str) -> float:
    return statistics.median(float(getattr(r, figure)) for r in results if r.valid)


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Run the bench; returns batched ÷ unbatched ``rps``, ``p50`` and ``p99``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rows", type=int, default=1, help="rows per request")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-batching-") as tmp:
        results = measure(args.rounds, args.seconds, args.rows, Path(tmp))
    base, batched = results["unbatched"], results["batched"]
    print(f"\n{CONNECTIONS} connections, {args.rows} row(s)/request, 2 workers, medians:")
    print("| variant | req/s | p50 ms | p99 ms |\n|---|---|---|---|")
    for name, rs in results.items():
        print(
            f"| {name} | {_median(rs, 'rps'):.1f} | {_median(rs, 'p50') * 1e3:.1f} | "
            f"{_median(rs, 'p99') * 1e3:.1f} |"
        )
    paired = [b.rps / u.rps for u, b in zip(base, batched, strict=True) if u.valid and b.valid]
    print(
        f"batched/unbatched: req/s {_median(batched, 'rps') / _median(base, 'rps'):.2f} "
        f"(per-round {min(paired):.2f}-{max(paired):.2f}), "
        f"p50 {_median(batched, 'p50') / _median(base, 'p50'):.2f}, "
        f"p99 {_median(batched, 'p99') / _median(base, 'p99'):.2f}"
    )
    return {f: _median(batched, f) / _median(base, f) for f in ("rps", "p50", "p99")}


if __name__ == "__main__":
    main()
