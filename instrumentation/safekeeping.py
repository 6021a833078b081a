"""Where a request's predictions go: the store, else the local spool, else counted as lost.

A prediction the model made is always answered. The store takes it when it can;
when it cannot (unreachable, disk full, read-only, locked), the rows and the
features needed to rebuild their aggregate cells go to the spool, and a replay
writes them to the store later, oldest first. Where even the spool cannot take
them (full, unwritable, or none configured) the prediction is served, counted in
``ml.predictions.unrecorded`` and logged: its response says ``recorded: false``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from instrumentation.aggregates import AggregateBook
from instrumentation.config import MonitorConfig
from instrumentation.spool import Entry, Spool, Unavailable
from instrumentation.store.protocol import (
    DuplicatePredictionId,
    Increments,
    PredictionRecord,
    PredictionStore,
    StoreUnavailable,
)
from instrumentation.telemetry import names
from instrumentation.telemetry.instruments import Instruments

logger = logging.getLogger(__name__)

Kept = Literal["stored", "spooled", "unrecorded"]
"""What became of one request's rows."""

PROBE_ID: Final = "__model_monitor_probe__"
"""A prediction id no client can have (ids are at most 128 characters; this is a read)."""

LOG_EVERY_SECONDS: Final = 10.0
"""A store outage logs once per this many seconds, not once per request."""


@dataclass(frozen=True)
class KeptRecords:
    """The records of one request (ids the client may label) and where they went."""

    records: list[PredictionRecord]
    kept: Kept


class Safekeeper:
    """Stores, spools or counts one model's predictions; replays the spool.

    Args:
        model: the model name rows are stored under.
        store: the store; ``spool``: the local stand-in, or None (count as unrecorded).
        book: builds each row's aggregate cells (again, at replay).
        instruments: the spooled / replayed / unrecorded counters.
        attributes: the model attributes of those counters.
    """

    def __init__(
        self,
        model: str,
        store: PredictionStore,
        spool: Spool | None,
        *,
        book: AggregateBook,
        config: MonitorConfig,
        instruments: Instruments,
        attributes: Mapping[str, str],
    ) -> None:
        self.model = model
        self.store = store
        self.spool = spool
        self.book = book
        self.config = config
        self.instruments = instruments
        self.attributes = dict(attributes)
        self._logged_at = float("-inf")
        self._down: BaseException | None = None
        """Why the store failed last; None while it works. Set, predictions skip it."""

    def increments(
        self, records: Sequence[PredictionRecord], features: Sequence[Mapping[str, Any]]
    ) -> Increments:
        """The aggregate cells of ``records``, each in its prediction-time bucket."""
        if len(records) != len(features):
            raise ValueError(f"{len(records)} records but {len(features)} feature rows")
        out = Increments()
        self.book.add_predictions(records, features, out)
        return out

    def keep(
        self, records: list[PredictionRecord], features: Sequence[Mapping[str, Any]]
    ) -> KeptRecords:
        """Store ``records`` (atomically with their cells), or spool them, or count them.

        While the store is known to be down, requests do not try it (each attempt
        could wait out a connection timeout): they go aside at once, until
        :meth:`replay` finds it working again.

        Raises:
            DuplicatePredictionId: a client id is already stored (nothing written).
        """
        if self._down is not None:
            return KeptRecords(records, self._aside(records, features, self._down))
        try:
            stored = self.store.add_predictions(
                self.model,
                records,
                self.increments(records, features),
                max_group_values=self.config.max_group_values,
            )
            return KeptRecords(stored, "stored")
        except StoreUnavailable as exc:
            self._down = exc
            return KeptRecords(records, self._aside(records, features, exc))

    def _aside(
        self,
        records: Sequence[PredictionRecord],
        features: Sequence[Mapping[str, Any]],
        exc: BaseException,
    ) -> Kept:
        entry = {"records": [r.to_json() for r in records], "features": list(features)}
        if self.spool is not None and self.spool.append(entry):
            self.instruments.spooled.add(len(records), self.attributes)
            self._log("spooled %d prediction(s): the store cannot take them (%s)", records, exc)
            return "spooled"
        reason = "no_spool" if self.spool is None else "spool_full"
        self.instruments.unrecorded.add(
            len(records), {**self.attributes, names.ATTR_UNRECORDED_REASON: reason}
        )
        logger.error(
            "%d prediction(s) served but NOT recorded (%s): the store cannot take them (%s)",
            len(records),
            reason,
            exc,
        )
        return "unrecorded"

    def _log(self, message: str, records: Sequence[PredictionRecord], exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._logged_at >= LOG_EVERY_SECONDS:
            self._logged_at = now
            logger.warning(message, len(records), exc)

    # --- replay -------------------------------------------------------------------------------

    def replay(self) -> int:
        """Write spooled predictions to the store, oldest first; the number written.

        Idempotent: an entry already stored (a replay interrupted after its commit)
        is recognised and skipped. A client id taken meanwhile by another prediction
        drops that row alone (counted as unrecorded, reason ``id_taken``, and
        logged); the rest of its request is stored.
        """
        if self.spool is None or not (self.spool.pending or self.spool.host_pending()):
            self._probe()
            return 0
        written = 0

        def apply(entry: Entry) -> None:
            nonlocal written
            records = [PredictionRecord.from_json(r) for r in entry["records"]]
            written += self._replay_entry(records, entry["features"])

        outcome = self.spool.replay(apply)
        if outcome.pending == 0:
            self._down = None
        if written:
            self.instruments.replayed.add(written, self.attributes)
            logger.info(
                "replayed %d spooled prediction(s); %d entries left", written, outcome.pending
            )
        return written

    def host_pending(self) -> int:
        """Requests waiting in this host's spool for the store (0 without a spool)."""
        return self.spool.host_pending() if self.spool is not None else 0

    def replay_before_labels(self) -> None:
        """Replay this process's spool before a label is joined: its ids were acknowledged.

        Raises:
            StoreUnavailable: spooled predictions cannot reach the store yet.
        """
        spool = self.spool
        if spool is None or not spool.pending:
            return
        self.replay()
        if spool.pending:
            raise StoreUnavailable(
                f"{spool.pending} spooled prediction(s) are not in the store yet"
            )

    def _probe(self) -> None:
        """Clear the down mark once the store answers a read again."""
        if self._down is None:
            return
        try:
            self.store.get_predictions(self.model, [PROBE_ID])
        except StoreUnavailable:
            return
        logger.info("prediction store answers again")
        self._down = None

    def _replay_entry(
        self, records: list[PredictionRecord], features: list[Mapping[str, Any]]
    ) -> int:
        while records:
            try:
                self.store.add_predictions(
                    self.model,
                    records,
                    self.increments(records, features),
                    max_group_values=self.config.max_group_values,
                )
                return len(records)
            except DuplicatePredictionId as exc:
                records, features = self._without(records, features, exc.prediction_id)
            except StoreUnavailable as exc:
                raise Unavailable(str(exc)) from exc
        return 0

    def _without(
        self,
        records: list[PredictionRecord],
        features: list[Mapping[str, Any]],
        taken: str,
    ) -> tuple[list[PredictionRecord], list[Mapping[str, Any]]]:
        """Drop the row whose id is taken: already this very row (an earlier replay), or not."""
        stored = self.store.get_predictions(self.model, [taken]).get(taken)
        index = next(i for i, r in enumerate(records) if r.prediction_id == taken)
        mine = records[index]
        if stored is None or (stored.created, stored.trace_id) != (mine.created, mine.trace_id):
            self.instruments.unrecorded.add(
                1, {**self.attributes, names.ATTR_UNRECORDED_REASON: "id_taken"}
            )
            logger.error(
                "spooled prediction %r not recorded: its client id was taken meanwhile", taken
            )
        return records[:index] + records[index + 1 :], features[:index] + features[index + 1 :]
