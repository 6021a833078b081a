"""A request body size cap, as ASGI middleware: 413 before the body is parsed.

``MONITOR_MAX_BATCH`` bounds the work of a request, but only once its body has been
read and parsed, which takes about six times the body's size in memory. This
middleware bounds the bytes themselves:

- a ``Content-Length`` over the limit is refused at once, before the app runs;
- a body without one (chunked) is counted as it streams in; the message that
  takes the count past the limit is never handed to the app, the 413 is sent
  right then, and the app's read is interrupted. The app has then been given at
  most ``limit`` bytes, and nothing here buffers any.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from bentoml.exceptions import BentoMLException

from service.errors import send_error

TOO_LARGE_MESSAGE = (
    "request body: {given} bytes given, at most {limit} per request (MONITOR_MAX_BODY_BYTES)"
)
"""The 413's error text; ``given`` is the ``Content-Length``, or ``more than <limit>``."""

Scope = dict[str, Any]
Message = dict[str, Any]
ASGIApp = Callable[..., Any]


class BodyTooLarge(BentoMLException):
    """Raised into the app's read of a streamed body that passed the limit.

    The 413 has already been sent; whatever the app answers is dropped. A
    ``BentoMLException`` with a 4xx code, so BentoML's error log (through
    :mod:`service.log_filters`) records it as one INFO line, not a traceback.
    """

    error_code = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class BodyLimitMiddleware:
    """Answers 413 to HTTP requests whose body is larger than ``limit()`` bytes.

    ``limit`` is called per request, so it is read from the live configuration.
    Non-HTTP scopes (lifespan, websockets) pass through untouched.
    """

    def __init__(self, app: ASGIApp, *, limit: Callable[[], int]) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        """Refuse on ``Content-Length``, else count the body as the app reads it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit()
        length = _content_length(scope)
        if length is not None and length > limit:
            await _reject(send, TOO_LARGE_MESSAGE.format(given=length, limit=limit))
            return
        await _CountedRequest(limit, receive, send).run(self.app, scope)


class _CountedRequest:
    """One request's byte count, and whether its 413 has been sent."""

    def __init__(self, limit: int, receive: Any, send: Any) -> None:
        self.limit = limit
        self.received = 0
        self.response_started = False
        self.rejected = False
        self._receive = receive
        self._send = send

    async def run(self, app: ASGIApp, scope: Scope) -> None:
        try:
            await app(scope, self.receive, self.send)
        except BodyTooLarge:
            if not self.rejected:  # the app had already answered: nothing left to say
                raise

    async def receive(self) -> Message:
        message: Message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                text = TOO_LARGE_MESSAGE.format(given=f"more than {self.limit}", limit=self.limit)
                if not self.response_started:
                    await _reject(self._send, text)
                    self.rejected = True
                raise BodyTooLarge(text)
        return message

    async def send(self, message: Message) -> None:
        if self.rejected:
            return  # the 413 went out already; the app's answer to the interrupted read is moot
        if message["type"] == "http.response.start":
            self.response_started = True
        await self._send(message)


def _content_length(scope: Scope) -> int | None:
    """The declared body length, or None when absent or not a number (the server checks it)."""
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _reject(send: Any, text: str) -> None:
    # The rest of the body is never read: the connection cannot be reused.
    await send_error(
        send, HTTPStatus.REQUEST_ENTITY_TOO_LARGE, text, headers=[(b"connection", b"close")]
    )
