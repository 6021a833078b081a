"""The BentoML service template: thin wiring around the ``instrumentation`` library."""
