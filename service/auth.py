"""Bearer-token checks for ``/feedback`` and for the figures (``/monitor``…), as ASGI middleware.

It runs before BentoML parses the body, so an unauthenticated caller gets 401
(never a validation error that would reveal the schema) and nothing is written.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from service.errors import send_error

UNAUTHORIZED_MESSAGE = "Authorization: expected 'Bearer <MONITOR_FEEDBACK_TOKEN>'"
READ_UNAUTHORIZED_MESSAGE = "Authorization: expected 'Bearer <MONITOR_READ_TOKEN>'"
READ_PATHS = ("/monitor", "/monitor/history")
"""What ``MONITOR_READ_TOKEN`` protects: the figures. The page (``/ui``) holds none: it
asks its reader for the token and sends it with each request for them."""

Scope = dict[str, Any]
ASGIApp = Callable[..., Any]


class FeedbackTokenMiddleware:
    """Rejects requests to ``path`` whose ``Authorization`` is not ``Bearer <token>``.

    ``token`` is called per request (``None`` disables the check), so the token is
    read from the live configuration. ``path`` is one path or several.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: Callable[[], str | None],
        path: str | tuple[str, ...] = "/feedback",
        message: str = UNAUTHORIZED_MESSAGE,
    ):
        self.app = app
        self.token = token
        self.paths = (path,) if isinstance(path, str) else path
        self.message = message

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        """Check the header, then hand over to the wrapped app."""
        if scope["type"] == "http" and scope["path"] in self.paths:
            expected = self.token()
            if expected is not None and not self._authorized(scope, expected):
                await _reject(send, self.message)
                return
        await self.app(scope, receive, send)

    @staticmethod
    def _authorized(scope: Scope, expected: str) -> bool:
        given = dict(scope.get("headers", [])).get(b"authorization", b"")
        return hmac.compare_digest(given, f"Bearer {expected}".encode())


async def _reject(send: Any, message: str) -> None:
    await send_error(
        send, HTTPStatus.UNAUTHORIZED, message, headers=[(b"www-authenticate", b"Bearer")]
    )
