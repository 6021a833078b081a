"""``MONITOR_MAX_BODY_BYTES``: bodies past the limit get a 413 naming it, before they are parsed.

First the middleware alone, around a fake app that reads the whole body (so what it
was handed, and when the 413 left, can be seen); then the service, in process, with
a ``Content-Length`` body, a streamed (chunked) one, one just under the limit, and
the 30,000-instance body that used to be parsed whole before ``MONITOR_MAX_BATCH``
refused it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from api_helpers import MODEL, error_text, instances_of, predict_ok
from starlette.testclient import TestClient

from instrumentation import ConfigError, SQLiteStore
from service.body_limit import TOO_LARGE_MESSAGE, BodyLimitMiddleware
from service.settings import DEFAULT_MAX_BODY_BYTES, load_settings

Message = dict[str, Any]
LIMIT = 1000
CHUNK = 100


def too_large(given: int | str, limit: int) -> str:
    return TOO_LARGE_MESSAGE.format(given=given, limit=limit)


# --- the middleware alone ------------------------------------------------------------


class ReadingApp:
    """Reads the whole body, then answers 200; records what it was handed."""

    def __init__(self) -> None:
        self.called = False
        self.bytes_read = 0
        self.error: BaseException | None = None

    async def __call__(self, scope: Message, receive: Any, send: Any) -> None:
        self.called = True
        more = True
        try:
            while more:
                message = await receive()
                self.bytes_read += len(message.get("body", b""))
                more = message.get("more_body", False)
        except Exception as exc:  # what a framework does with a failed read: answer 4xx/5xx
            self.error = exc
            await send({"type": "http.response.start", "status": 500, "headers": []})
            await send({"type": "http.response.body", "body": b"app error"})
            raise
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


class Exchange:
    """One request through the middleware: chunks in, the messages that came out."""

    def __init__(self, chunks: list[bytes], headers: list[tuple[bytes, bytes]]) -> None:
        self.chunks = chunks
        self.headers = headers
        self.pulled = 0  # chunks the server side asked for
        self.sent: list[Message] = []
        self.pulled_when_answered: int | None = None

    async def receive(self) -> Message:
        index = self.pulled
        self.pulled += 1
        return {
            "type": "http.request",
            "body": self.chunks[index],
            "more_body": index < len(self.chunks) - 1,
        }

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.pulled_when_answered = self.pulled
        self.sent.append(message)

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def body(self) -> Any:
        return json.loads(b"".join(m.get("body", b"") for m in self.sent[1:]))

    def run(self, app: ReadingApp) -> None:
        scope = {"type": "http", "method": "POST", "path": "/predict", "headers": self.headers}
        middleware = BodyLimitMiddleware(app, limit=lambda: LIMIT)
        asyncio.run(middleware(scope, self.receive, self.send))


def chunked(total: int) -> list[bytes]:
    return [b"x" * CHUNK for _ in range(total // CHUNK)]


def test_a_content_length_over_the_limit_is_refused_before_the_app_runs() -> None:
    exchange = Exchange(chunked(LIMIT + CHUNK), [(b"content-length", b"1100")])
    app = ReadingApp()

    exchange.run(app)

    assert not app.called
    assert exchange.pulled == 0  # not one byte of the body read
    assert exchange.status == 413
    assert exchange.body == {"error": too_large(1100, LIMIT)}
    assert (b"connection", b"close") in exchange.sent[0]["headers"]


def test_a_streamed_body_is_refused_as_soon_as_it_passes_the_limit() -> None:
    exchange = Exchange(chunked(10 * LIMIT), [(b"transfer-encoding", b"chunked")])
    app = ReadingApp()

    exchange.run(app)

    # The chunk that crossed the limit was pulled and answered at once, never handed on;
    # the app's own answer to its interrupted read was dropped.
    crossing = LIMIT // CHUNK + 1
    assert exchange.pulled == exchange.pulled_when_answered == crossing
    assert app.bytes_read == LIMIT
    assert [m["type"] for m in exchange.sent] == ["http.response.start", "http.response.body"]
    assert exchange.status == 413
    assert exchange.body == {"error": too_large(f"more than {LIMIT}", LIMIT)}
    assert str(app.error) == too_large(f"more than {LIMIT}", LIMIT)


@pytest.mark.parametrize(
    "headers", [[(b"content-length", str(LIMIT).encode())], []], ids=["length", "chunked"]
)
def test_a_body_of_exactly_the_limit_reaches_the_app(headers: list[tuple[bytes, bytes]]) -> None:
    exchange = Exchange(chunked(LIMIT), headers)
    app = ReadingApp()

    exchange.run(app)

    assert (exchange.status, app.bytes_read, app.error) == (200, LIMIT, None)


# --- configuration ---------------------------------------------------------------------


def test_the_limit_comes_from_its_variable() -> None:
    assert load_settings({}).max_body_bytes == DEFAULT_MAX_BODY_BYTES == 4 * 1024 * 1024
    assert load_settings({"MONITOR_MAX_BODY_BYTES": " 1024 "}).max_body_bytes == 1024


@pytest.mark.parametrize("raw", ["0", "-5", "4MiB", "1e6"])
def test_a_bad_limit_names_its_variable(raw: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings({"MONITOR_MAX_BODY_BYTES": raw})
    assert str(raised.value) == f"MONITOR_MAX_BODY_BYTES={raw!r}: expected a whole number >= 1"


# --- the service -------------------------------------------------------------------------


def predict_body(n: int) -> bytes:
    return json.dumps({"instances": instances_of(n)}).encode()


@pytest.fixture
def small_limit(make_client: Callable[..., TestClient]) -> Iterator[tuple[TestClient, int]]:
    """A service whose limit lies between a 5-row and a 6-row body."""
    limit = (len(predict_body(5)) + len(predict_body(6))) // 2
    yield make_client(MONITOR_MAX_BODY_BYTES=str(limit)), limit


def test_the_service_refuses_a_long_content_length(
    small_limit: tuple[TestClient, int], store: SQLiteStore
) -> None:
    client, limit = small_limit
    body = predict_body(6)

    response = client.post("/predict", content=body, headers={"content-type": "application/json"})

    assert response.status_code == 413
    assert error_text(response) == too_large(len(body), limit)
    assert store.count_predictions(MODEL) == 0


def test_the_service_refuses_a_long_chunked_body_while_it_streams(
    small_limit: tuple[TestClient, int], asgi_app: Any, store: SQLiteStore
) -> None:
    """httpx's ASGI transport hands the app one chunk per read (Starlette's client joins them)."""
    _, limit = small_limit
    body = predict_body(200)
    pulled = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal pulled
        for start in range(0, len(body), 256):
            pulled += 1
            yield body[start : start + 256]

    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=asgi_app)  # the app the TestClient started
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            return await http.post(
                "/predict", content=chunks(), headers={"content-type": "application/json"}
            )

    response = asyncio.run(post())

    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert error_text(response) == too_large(f"more than {limit}", limit)
    assert pulled == limit // 256 + 1  # not one chunk read past the one that crossed
    assert store.count_predictions(MODEL) == 0


def test_a_body_just_under_the_limit_is_served(small_limit: tuple[TestClient, int]) -> None:
    client, limit = small_limit
    body = predict_body(5)
    assert len(body) < limit

    response = client.post("/predict", content=body, headers={"content-type": "application/json"})

    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 5


def test_a_30000_instance_body_is_refused_before_it_is_parsed(
    client: TestClient, store: SQLiteStore
) -> None:
    """It used to be parsed whole (~35 MB) and then refused by ``MONITOR_MAX_BATCH``."""
    body = predict_body(30_000)
    assert len(body) > DEFAULT_MAX_BODY_BYTES

    response = client.post("/predict", content=body, headers={"content-type": "application/json"})

    assert response.status_code == 413
    assert error_text(response) == too_large(len(body), DEFAULT_MAX_BODY_BYTES)
    assert "MONITOR_MAX_BODY_BYTES" in error_text(response)
    assert store.count_predictions(MODEL) == 0
    assert len(predict_ok(client, instances_of(3))) == 3
