"""The monitoring page, ``GET /ui``, and the history it draws, ``GET /monitor/history``.

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
from instrumentation.config import parse_duration

STATIC_DIR: Final = Path(__file__).parent / "ui"
"""The page's files; ``vendor/`` in it is filled by ``make venv`` (npm ``uplot``)."""

TIME_PARAMETER: Final = "{name}: expected epoch seconds or an ISO-8601 time, got {value!r}"

NO_STORE: Final = {"Cache-Control": "no-store"}


def _time(request: Request, name: str) -> float | None:
    raw = request.query_params.get(name)
    if raw is None or not raw.strip():
        return None
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(raw.strip().replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise ConfigError(TIME_PARAMETER.format(name=name, value=raw)) from None


def _duration(request: Request, name: str, default: float | None) -> float | None:
    raw = request.query_params.get(name)
    return default if raw is None else parse_duration(raw, variable=name)


def routes(*, unavailable: Callable[[StoreUnavailable], Response]) -> list[BaseRoute]:
    """The page's routes, for the service's Starlette app (``unavailable``: its 503)."""

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
            return JSONResponse({"error": str(exc)}, status_code=HTTPStatus.BAD_REQUEST)
        return JSONResponse(body, headers=NO_STORE)

    async def page(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", headers=NO_STORE)

    return [
        Route("/monitor/history", history, methods=["GET"]),
        Route("/ui", page, methods=["GET"]),
        Mount("/ui/assets", StaticFiles(directory=STATIC_DIR, check_dir=False), name="ui"),
    ]
