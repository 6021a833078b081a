"""The read side: ``GET /monitor``, the history ``GET /monitor/history``, the page ``GET /ui``.

``GET /monitor[?compare=version,baseline]``: every window's figures, computed from the
store at call time (``ModelMonitor.snapshot``).

The page is static (``service/ui/``: HTML, one script, one stylesheet, and uPlot in
``service/ui/vendor`` copied there by ``make venv``): it holds no figures itself and
reads them from ``GET /monitor`` and ``GET /monitor/history`` with the reader's token
(``MONITOR_READ_TOKEN``), so it is served without one. Nothing is fetched from
elsewhere: the page works offline and from a bento.

``GET /monitor/history?window=15m&step=1m&from=…&to=…``: for each model version and
figure, the window ending at each step (see
:mod:`instrumentation.aggregates.history`). ``window`` defaults to the first of
``MONITOR_WINDOWS``, ``step`` to the fewest whole buckets that keep the range within
240 points, ``to`` to now and ``from`` to one ``window`` before ``to``; ``from``/``to``
are epoch seconds or ISO-8601 times.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from http import HTTPStatus
from pathlib import Path
from typing import Final

import bentoml
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from instrumentation import ConfigError, StoreUnavailable
from instrumentation.config import DURATION_HELP, parse_duration
from service.errors import error_response

STATIC_DIR: Final = Path(__file__).parent / "ui"
"""The page's files; ``vendor/`` in it is filled by ``make venv`` (npm ``uplot``)."""

TIME_PARAMETER: Final = (
    "{name}: expected epoch seconds within the years 1 to 9999 or an RFC 3339 time, got {value!r}"
)
DURATION_PARAMETER: Final = (
    "{name}={value!r}: expected a positive duration of at most 6 digits, " + DURATION_HELP
)
DURATION_PATTERN: Final = r"^\s*0*[1-9][0-9]{0,5}\s*[smhdw]\s*$"
"""``window`` and ``step`` (``/docs.json`` declares the same pattern)."""
RFC3339_PATTERN: Final = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
"""``from`` and ``to`` as times: what OpenAPI's ``date-time`` format means."""
EPOCH_RANGE: Final = (-62135596800.0, 253402300799.0)
"""``from`` and ``to`` as epoch seconds: 0001-01-01 to 9999-12-31T23:59:59 UTC."""

NO_STORE: Final = {"Cache-Control": "no-store"}

COMPARE_PARAMETER: Final = "compare: expected two model versions, 'version,baseline'"


def _time(request: Request, name: str) -> float | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        pass
    else:
        if EPOCH_RANGE[0] <= seconds <= EPOCH_RANGE[1]:  # NaN fails both
            return seconds
        raise ConfigError(TIME_PARAMETER.format(name=name, value=raw))
    if re.fullmatch(RFC3339_PATTERN, raw):
        try:
            return datetime.fromisoformat(raw.upper().replace("Z", "+00:00")).timestamp()
        except ValueError:  # a month 13, a second 60
            pass
    raise ConfigError(TIME_PARAMETER.format(name=name, value=raw))


def _duration(request: Request, name: str, default: float | None) -> float | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not re.fullmatch(DURATION_PATTERN, raw):
        raise ConfigError(DURATION_PARAMETER.format(name=name, value=raw))
    return parse_duration(raw, variable=name)


def routes(*, unavailable: Callable[[StoreUnavailable], Response]) -> list[BaseRoute]:
    """The read routes, for the service's Starlette app (``unavailable``: its 503)."""

    async def snapshot(request: Request) -> Response:
        service = bentoml.get_current_service()
        pair: tuple[str, str] | None = None
        raw = request.query_params.get("compare")
        if raw is not None:
            parts = [p.strip() for p in raw.split(",")]
            if len(parts) != 2 or not all(parts):
                return error_response(HTTPStatus.BAD_REQUEST, COMPARE_PARAMETER)
            pair = (parts[0], parts[1])
        try:
            # Summing a day of buckets is blocking database work: keep it off the event loop.
            body = await run_in_threadpool(lambda: service.monitor.snapshot(compare=pair))
        except StoreUnavailable as exc:
            return unavailable(exc)
        return JSONResponse(body)

    async def history(request: Request) -> Response:
        service = bentoml.get_current_service()
        config = service.settings.monitor
        try:
            window = _duration(request, "window", None) or config.windows[0].seconds
            step = _duration(request, "step", None)
            start, end = _time(request, "from"), _time(request, "to")
            body = await run_in_threadpool(
                lambda: service.monitor.history(window=window, step=step, start=start, end=end)
            )
        except StoreUnavailable as exc:
            return unavailable(exc)
        except ValueError as exc:  # ConfigError included: the message names the parameter
            return error_response(HTTPStatus.BAD_REQUEST, str(exc))
        return JSONResponse(body, headers=NO_STORE)

    async def page(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", headers=NO_STORE)

    return [
        Route("/monitor", snapshot, methods=["GET"]),
        Route("/monitor/history", history, methods=["GET"]),
        Route("/ui", page, methods=["GET"]),
        Mount("/ui/assets", StaticFiles(directory=STATIC_DIR, check_dir=False), name="ui"),
    ]
