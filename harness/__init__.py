"""Launchers for real child processes: ``bentoml serve``, Prometheus, Alertmanager, Phoenix.

Used by the end-to-end tests, the benchmarks and ``make demo``; never shipped in a bento.
"""
