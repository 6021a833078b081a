"""``make bench``: the served benchmark first, then the in-process ones.

``--quick`` (``make bench BENCH_ARGS=--quick``) runs the served benchmark's quick
matrix and the in-process benchmarks with fewer repeats; the whole run stays
within a few minutes.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from bench import feedback_ingest, metric_compute, prediction_overhead, served

QUICK_ARGS = {
    prediction_overhead.__name__: ["--repeats", "200"],
    metric_compute.__name__: ["--repeats", "5"],
    feedback_ingest.__name__: ["--labels", "2000"],
}


def _call(main: Callable[[], None], argv: Sequence[str]) -> None:
    """Run a benchmark whose ``main()`` reads ``sys.argv`` with ``argv`` in its place."""
    import sys

    saved = sys.argv
    sys.argv = [saved[0], *argv]
    try:
        main()
    finally:
        sys.argv = saved


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the bounded quick versions")
    args = parser.parse_args(argv)
    print(f"\n== {served.__name__} ==", flush=True)
    served.main(["--quick"] if args.quick else [])
    for module in (prediction_overhead, metric_compute, feedback_ingest):
        print(f"\n== {module.__name__} ==", flush=True)
        _call(module.main, QUICK_ARGS[module.__name__] if args.quick else [])


if __name__ == "__main__":
    main()
