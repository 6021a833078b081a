"""Real servers and backends for the tests, the benchmarks and ``make demo``.

Launchers for child processes (``bentoml serve``, PostgreSQL, Prometheus,
Alertmanager, Phoenix) and an in-process OTLP receiver. ``tests/``, ``bench/`` and
``demo/`` import it; it imports none of them, and it is never shipped in a bento.
"""
