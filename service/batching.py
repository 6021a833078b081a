"""Adaptive batching (``MONITOR_ADAPTIVE_BATCHING=1``): concurrent requests share model calls.

What BentoML 1.4 does, and what this is built around (read in its source, checked by
``tests/e2e/test_batching.py``):

- Only a call that reaches a ``batchable=True`` API through its HTTP route is batched:
  each worker's ASGI app holds one dispatcher per batchable API, running in that
  worker's event loop, which concatenates the list arguments of concurrent calls
  (``batch_dim`` 0) into one call of at most ``max_batch_size`` items (a larger call
  is split) and hands each caller its slice of the output list; the batch function
  itself runs in a worker thread. Inside a running worker, ``self.<api>(...)`` is no
  Python call either: BentoML sends it through its in-process client to the route
  (batched, then); from a sync API it deadlocks, since the sync API holds the one
  thread BentoML gives sync APIs and the batch call waits for that same thread.
- So ``/predict`` itself cannot be batchable: its body (``model`` and
  ``predictions``) and its per-request 4xx answers are not slices of one list.
- The dispatcher's loop is started inside the first request it ever sees, so every
  span started in a batch has that request as its parent, forever.
- BentoML's in-process client to a service's own routes renews its aiohttp session
  every 100 calls (``runner_connection.max_requests``) by closing the old one, and the
  calls still on it fail ("Server disconnected"): ~10% of requests at 32 concurrent
  clients. Its socket-free session has nothing to renew, so :func:`batching_options`
  turns renewal off.

Hence: ``/predict`` stays the endpoint clients call, validating and recording each
request exactly as without batching (its own ``ml.predict`` span in its own trace,
its rows stored, its ids). Only its model call changes: :class:`BatchedPredictor`
parks the rows under a random ticket and posts ``"<ticket>:<row>"`` items to the
internal batchable route through BentoML's in-process client (``to_async``: no
socket, the same worker). The batch handler, :meth:`BatchedPredictor.run_batch`, calls
the model once for every row of the batch inside an ``ml.predict.batch`` span (the
root of its own trace, linked to each request's ``ml.predict`` span) and writes each
row's outputs back to its ticket.

The internal route takes tickets, never features: a caller outside the worker cannot
get an unrecorded prediction from it (an unknown ticket is answered ``false``).
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio.from_thread
from opentelemetry import trace
from opentelemetry.trace import SpanContext

from instrumentation import BatchedRequest, ModelMonitor
from service.predictor import Predictor
from service.settings import Batching

BATCH_API = "predict_batch"
"""Name (and route, ``/predict_batch``) of the internal batchable API."""

NOT_SERVED = "adaptive batching: the batch call answered without outputs for {missing} row(s)"
"""Error of a request whose rows a batch call did not serve (cannot happen unless BentoML
changes how it splits batches)."""

Submit = Callable[[list[str]], Coroutine[Any, Any, list[bool]]]
"""Posts items to the batchable route (in the worker's event loop); one flag per item."""


SELF_CLIENT_CONNECTION: dict[str, Any] = {"max_requests": 2**31 - 1, "max_age": 1e9}
"""``runner_connection`` of the service with batching on: its self-client is never renewed."""


def batching_options(batching: Batching) -> dict[str, Any]:
    """Extra ``@bentoml.service`` options for ``batching`` (none when it is off)."""
    return {"runner_connection": SELF_CLIENT_CONNECTION} if batching.enabled else {}


@dataclass
class _Parked:
    """One request's rows waiting for a batch, and the outputs the batch writes back."""

    rows: Sequence[Mapping[str, Any]]
    request: SpanContext
    labels: list[str | None] = field(init=False)
    scores: list[list[float] | None] = field(init=False)
    values: list[float | None] = field(init=False)

    def __post_init__(self) -> None:
        n = len(self.rows)
        self.labels, self.scores, self.values = [None] * n, [None] * n, [None] * n


class BatchedPredictor:
    """A :class:`Predictor` whose model calls BentoML's dispatcher merges across requests.

    Same ``classify`` / ``regress`` as ``Predictor``, called from a worker thread inside
    the request's ``monitor.predict`` block (its ``ml.predict`` span is the current
    one). ``submit`` reaches the batchable API; its handler calls :meth:`run_batch`.
    """

    def __init__(self, predictor: Predictor, monitor: ModelMonitor, submit: Submit) -> None:
        self.predictor = predictor
        self.monitor = monitor
        self._submit = submit
        self._parked: dict[str, _Parked] = {}

    def classify(self, rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[float]]]:
        """Predicted class names and class probabilities, from a shared model call."""
        parked = self._call(rows)
        return _served(parked.labels), _served(parked.scores)

    def regress(self, rows: Sequence[Mapping[str, Any]]) -> list[float]:
        """Predicted values, from a shared model call."""
        return _served(self._call(rows).values)

    def _call(self, rows: Sequence[Mapping[str, Any]]) -> _Parked:
        ticket = secrets.token_hex(16)
        parked = _Parked(rows, trace.get_current_span().get_span_context())
        self._parked[ticket] = parked
        try:
            # Into the worker's event loop, where BentoML's dispatcher runs; this thread waits.
            anyio.from_thread.run(self._submit, [f"{ticket}:{i}" for i in range(len(rows))])
        finally:
            del self._parked[ticket]
        return parked

    def run_batch(self, items: Sequence[str]) -> list[bool]:
        """One model call for every row ``items`` name; True for each row served."""
        found: list[tuple[_Parked, int]] = []
        served: list[bool] = []
        rows_of: Counter[str] = Counter()  # each request's rows in this batch, by ticket
        for item in items:
            ticket, _, index = item.partition(":")
            parked = self._parked.get(ticket)
            ok = parked is not None and index.isdigit() and int(index) < len(parked.rows)
            served.append(ok)
            if parked is None or not ok:
                continue
            found.append((parked, int(index)))
            rows_of[ticket] += 1
        if not found:
            return served
        batch = [BatchedRequest(self._parked[t].request, n) for t, n in rows_of.items()]
        rows = [parked.rows[row] for parked, row in found]
        with self.monitor.batch(batch):
            if self.predictor.spec.is_classifier:
                labels, scores = self.predictor.classify(rows)
                for (parked, row), label, score in zip(found, labels, scores, strict=True):
                    parked.labels[row], parked.scores[row] = label, score
            else:
                values = self.predictor.regress(rows)
                for (parked, row), value in zip(found, values, strict=True):
                    parked.values[row] = value
        return served


def _served(outputs: list[Any]) -> list[Any]:
    missing = sum(1 for output in outputs if output is None)
    if missing:
        raise RuntimeError(NOT_SERVED.format(missing=missing))
    return outputs
