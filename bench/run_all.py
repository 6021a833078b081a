"""``make bench``: every benchmark in turn."""

from __future__ import annotations

from bench import feedback_ingest, metric_compute, prediction_overhead

if __name__ == "__main__":
    for module in (prediction_overhead, metric_compute, feedback_ingest):
        print(f"\n== {module.__name__} ==", flush=True)
        module.main()
