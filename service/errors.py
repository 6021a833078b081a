"""The service's error answers: ``{"error": "<field>: <what was expected>"}``, one shape.

Every 4xx and 5xx the service writes itself has this body (``ErrorBody`` in
:mod:`service.schemas`, as ``/docs.json`` declares it); BentoML's own schema check
adds a ``detail`` list to it. A :class:`Refused` raised inside an API is turned into
such an answer by the API (:meth:`Refused.response`), not raised into BentoML:
BentoML would wrap the body of its own exceptions in a list (``[{"error": …}]``),
which no client and no schema expects.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from http import HTTPStatus
from typing import Any, Final

from starlette.responses import JSONResponse

logger = logging.getLogger(__name__)

CLIENT_ERROR_LOG: Final = "client error on %s: %d %s"


class Refused(Exception):
    """A request refused whole, with the status and the text naming the field."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def response(self, route: str) -> JSONResponse:
        """The answer, ``{"error": message}`` with the status, logged as one INFO line.

        The line is what BentoML's log (through :mod:`service.log_filters`) says of a
        client error it answers itself: the route, then the status and the text.
        """
        logger.info(CLIENT_ERROR_LOG, route, int(self.status), self.message)
        return error_response(self.status, self.message)


def error_response(
    status: HTTPStatus, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """``{"error": message}`` with ``status``."""
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def send_error(
    send: Callable[[dict[str, Any]], Awaitable[None]],
    status: HTTPStatus,
    message: str,
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    """Send ``{"error": message}`` with ``status`` from ASGI middleware, before the app runs."""
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": int(status),
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
