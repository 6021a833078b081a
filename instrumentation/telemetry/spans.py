"""The span around a request, started and ended so that telemetry can never fail the request.

A span processor that raises (in ``on_start`` or ``on_end``) would otherwise fail a
request whose prediction or label is already committed: the client would retry
into a 409 or a second prediction. So :func:`request_span` falls back to an
invalid span when starting fails and swallows errors when ending, and
:func:`safely` runs any other telemetry work the same way (logged, not raised).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode, Tracer, TracerProvider

from instrumentation.telemetry import names

logger = logging.getLogger(__name__)


def library_tracer(provider: TracerProvider | None) -> Tracer:
    """This library's tracer from ``provider`` (global when None): name, version, schema URL."""
    return trace.get_tracer(
        names.INSTRUMENTATION_SCOPE, names.SCOPE_VERSION, provider, schema_url=names.SCHEMA_URL
    )


def safely(func: Callable[..., Any], *args: Any) -> None:
    """Run telemetry work; log and swallow its errors so it never breaks a request."""
    try:
        func(*args)
    except Exception:
        logger.exception(
            "telemetry error in %s (request unaffected)", getattr(func, "__name__", func)
        )


@contextmanager
def request_span(
    tracer: Tracer,
    name: str,
    attributes: dict[str, Any],
    *,
    start: Callable[[], Span] | None = None,
) -> Iterator[Span]:
    """The current span around a request; starting or ending it never raises into it.

    ``start`` starts a span other than a child of the current one named ``name``
    (a batch's root span).
    """
    try:
        span: Span = (
            start()
            if start is not None
            else tracer.start_span(
                name,
                attributes=attributes,
                record_exception=False,
                set_status_on_exception=False,
            )
        )
    except Exception:
        logger.exception("telemetry error starting %s (request unaffected)", name)
        span = trace.INVALID_SPAN
    try:
        with trace.use_span(
            span, end_on_exit=False, record_exception=False, set_status_on_exception=False
        ):
            yield span
    finally:
        safely(span.end)


def mark_failed(span: Span, exc: BaseException, error_type: str) -> None:
    """Status ERROR, ``error.type`` and the exception event on a failed request's span."""
    span.set_status(Status(StatusCode.ERROR, str(exc)[:256]))
    span.set_attribute(names.ATTR_ERROR_TYPE, error_type)
    span.record_exception(exc)


def mark_no_outputs(span: Span, error_type: str, message: str) -> None:
    """Status ERROR and ``error.type`` on a prediction left without outputs (logged too)."""
    logger.warning("%s (%s recorded as an error)", message, names.SPAN_PREDICT)
    span.set_status(Status(StatusCode.ERROR, message))
    span.set_attribute(names.ATTR_ERROR_TYPE, error_type)
