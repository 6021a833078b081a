"""Everything OpenTelemetry, in one place: names, instruments, gauges, spans, providers.

The monitor (``instrumentation/monitor.py``) calls into these; none of them reads
the store except :mod:`.window_gauges` (through the lease and the snapshot it is
handed):

- :mod:`.names`: every span, metric and attribute name, each defined once.
- :mod:`.instruments`: the counters and histograms, created once per monitor.
- :mod:`.spans`: the span around a request, started and ended so it can never fail it.
- :mod:`.batch`, :mod:`.feedback`: the ``ml.predict.batch`` span and its links; the
  counters and span details of one feedback request.
- :mod:`.gauge_table`: every window gauge, typed, each spelled once.
- :mod:`.gauge_points`: a window report flattened into gauge observations by the table.
- :mod:`.window_gauges`: the observable gauges, reported by one lease holder.
- :mod:`.providers`: the meter provider and exporters from the ``OTEL_*`` environment.
- :mod:`.prometheus`: a per-process scrape endpoint under OTLP-ingestion names.
"""
