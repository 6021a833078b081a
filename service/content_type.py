"""JSON bodies only, as ASGI middleware: 415 before the body is read.

BentoML picks its parser by ``Content-Type``: ``multipart/form-data`` and
``application/x-www-form-urlencoded`` go to a form parser (a multipart type without
its ``boundary`` makes it fail: a 500), anything else to JSON. ``/predict`` and
``/feedback`` take JSON, and ``/docs.json`` says so; this middleware answers every
other declared type with a 415 naming the header, before anything is parsed. A
request without a ``Content-Type`` is read as JSON, as BentoML does.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Final

from service.errors import send_error

JSON: Final = "application/json"
JSON_APIS: Final = ("/predict", "/feedback")
"""The routes whose body is JSON (BentoML's APIs of the service)."""
UNSUPPORTED_MESSAGE: Final = "Content-Type: expected application/json, got {given!r}"

Scope = dict[str, Any]
ASGIApp = Callable[..., Any]


class JSONOnlyMiddleware:
    """Answers 415 to a request to ``paths`` whose ``Content-Type`` is not JSON.

    Parameters such as ``charset`` are allowed; the media type is compared without
    regard to case. Other paths and non-HTTP scopes pass through untouched.
    """

    def __init__(self, app: ASGIApp, *, paths: tuple[str, ...] = JSON_APIS) -> None:
        self.app = app
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        """Refuse a non-JSON ``Content-Type`` on ``paths``, else hand over to the app."""
        if scope["type"] == "http" and scope["path"] in self.paths:
            given = _content_type(scope)
            if given is not None and given.split(";", 1)[0].strip().lower() != JSON:
                await send_error(
                    send,
                    HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                    UNSUPPORTED_MESSAGE.format(given=given),
                    headers=[(b"accept-post", JSON.encode())],
                )
                return
        await self.app(scope, receive, send)


def _content_type(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            return bytes(value).decode("latin-1")
    return None
