"""What monitoring adds to one prediction, in process: bare model call vs ``monitor.predict``.

Both variants run the same model on the same rows in the same process; the ratio
is the figure to read (the machine is shared and noisy, absolute times are not).
Variants: bare predictor; monitored with an unsampled tracer (the BentoML default);
monitored with every span recorded; and, unsampled again, with SQLite left to
checkpoint its write-ahead log inside the committing request (the store's default
moves that to a background thread; compare the p99 column). Each with 1 and 32 rows
per request. p99 ratios are against the bare model's p99.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON

from bench._common import demo_predictor, p99, timings
from instrumentation import ModelMonitor, PredictionInput, SQLiteStore
from service.train import make_dataset


def report(rows: int, name: str, times: list[float], baseline: tuple[float, float]) -> None:
    """One table row: median and p99, each also as a multiple of the bare model's."""
    median, tail = statistics.median(times), p99(times)
    print(
        f"{rows:>4} {name:<32} {median * 1e3:10.3f} {median / baseline[0]:7.2f}"
        f" {tail * 1e3:8.3f} {tail / baseline[1]:7.2f}"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1000)
    args = parser.parse_args(argv)
    predictor = demo_predictor()
    spec = predictor.spec
    workdir = Path(tempfile.mkdtemp(prefix="bench-overhead-"))
    header = ("rows", "variant", "median ms", "x bare", "p99 ms", "x bare")
    print("{:>4} {:<32} {:>10} {:>7} {:>8} {:>7}".format(*header))
    for rows in (1, 32):
        instances, _ = make_dataset(rows, seed=rows)
        features = [i["features"] for i in instances]
        inputs = [PredictionInput(i["features"], None, i["groups"]) for i in instances]

        def bare(features: list[dict[str, object]] = features) -> None:
            predictor.classify(features)

        bare_times = timings(bare, repeats=args.repeats)
        baseline = (statistics.median(bare_times), p99(bare_times))

        report(rows, "bare model", bare_times, baseline)
        for name, sampler, checkpoint in (
            ("monitored, unsampled", ALWAYS_OFF, 1.0),
            ("monitored, sampled", ALWAYS_ON, 1.0),
            ("unsampled, checkpoint in request", ALWAYS_OFF, None),
        ):
            tracer = TracerProvider(sampler=sampler)
            tracer.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
            monitor = ModelMonitor(
                spec,
                SQLiteStore(workdir / f"{name}-{rows}.db", checkpoint_seconds=checkpoint),
                tracer_provider=tracer,
                meter_provider=MeterProvider(metric_readers=[InMemoryMetricReader()]),
            )

            def monitored(
                monitor: ModelMonitor = monitor,
                inputs: list[PredictionInput] = inputs,
                features: list[dict[str, object]] = features,
            ) -> None:
                with monitor.predict(inputs) as rec:
                    labels, scores = predictor.classify(features)
                    rec.set_outputs(labels=labels, scores=scores)

            report(rows, name, timings(monitored, repeats=args.repeats), baseline)
            monitor.store.close()


if __name__ == "__main__":
    main()
