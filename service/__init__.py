"""The BentoML service template: thin wiring around the ``instrumentation`` library."""

SERVICE_NAME = "model_monitor"
"""The BentoML service name: ``service.name`` of its spans and of our metrics."""
