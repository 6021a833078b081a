"""Server logs that say what matters: a client's bad request is not a server error.

BentoML logs every exception raised while handling a request at ERROR with a full
traceback, including validation failures and our own 4xx. That buries real
failures; this filter turns client errors into one INFO line and leaves 5xx alone.

BentoML also leaves the root logger at WARNING, which would hide the service's and
the library's INFO lines (where the store is, for one); those are let through.
"""

from __future__ import annotations

import logging

from bentoml.exceptions import BentoMLException
from pydantic import ValidationError

BENTOML_REQUEST_LOGGER = "bentoml._internal.server.http_app"
"""The logger BentoML's ``log_exception`` writes to."""

OWN_LOGGERS = ("service", "instrumentation")
"""This project's logger trees, shown from INFO unless a level was set for them."""


def is_client_error(exc: BaseException | None) -> bool:
    """True for request validation errors and BentoML exceptions with a 4xx status."""
    if isinstance(exc, ValidationError):
        return True
    return isinstance(exc, BentoMLException) and int(exc.error_code) < 500


class ClientErrorFilter(logging.Filter):
    """Rewrites client-error records to INFO without a traceback; passes everything else."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Always keep the record; demote it when it is about a client error."""
        exc = record.exc_info[1] if record.exc_info else None
        if is_client_error(exc):
            record.msg = f"{record.getMessage()}: client error: {str(exc).splitlines()[0]}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
            record.levelno = logging.INFO
            record.levelname = logging.getLevelName(logging.INFO)
        return True


def install() -> None:
    """Attach the filter to BentoML's request-error logger; show our INFO (idempotent)."""
    target = logging.getLogger(BENTOML_REQUEST_LOGGER)
    if not any(isinstance(f, ClientErrorFilter) for f in target.filters):
        target.addFilter(ClientErrorFilter())
    for name in OWN_LOGGERS:
        own = logging.getLogger(name)
        if own.level == logging.NOTSET:
            own.setLevel(logging.INFO)
