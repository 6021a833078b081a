"""What monitoring adds to one prediction, in process: bare model call vs ``monitor.predict``.

Both variants run the same model on the same rows in the same process; the ratio
is the figure to read (the machine is shared and noisy, absolute times are not).
Variants: bare predictor; monitored with an unsampled tracer (the BentoML default);
monitored with every span recorded. Each with 1 and 32 rows per request.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON

from bench._common import demo_predictor, median_seconds
from instrumentation import ModelMonitor, PredictionInput, SQLiteStore
from service.train import make_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()
    predictor = demo_predictor()
    spec = predictor.spec
    workdir = Path(tempfile.mkdtemp(prefix="bench-overhead-"))
    print(f"{'rows':>4} {'variant':<22} {'median ms':>10} {'x bare':>7}")
    for rows in (1, 32):
        instances, _ = make_dataset(rows, seed=rows)
        features = [i["features"] for i in instances]
        inputs = [PredictionInput(i["features"], None, i["groups"]) for i in instances]

        def bare(features: list[dict[str, object]] = features) -> None:
            predictor.classify(features)

        baseline = median_seconds(bare, repeats=args.repeats)
        print(f"{rows:>4} {'bare model':<22} {baseline * 1e3:10.3f} {1.0:7.2f}")
        for name, sampler in (
            ("monitored, unsampled", ALWAYS_OFF),
            ("monitored, sampled", ALWAYS_ON),
        ):
            tracer = TracerProvider(sampler=sampler)
            tracer.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
            monitor = ModelMonitor(
                spec,
                SQLiteStore(workdir / f"{name}-{rows}.db"),
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

            seconds = median_seconds(monitored, repeats=args.repeats)
            print(f"{rows:>4} {name:<22} {seconds * 1e3:10.3f} {seconds / baseline:7.2f}")


if __name__ == "__main__":
    main()
