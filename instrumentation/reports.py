"""Window reports for every model version with data, and the comparison of two versions.

Figures belong to the version that predicted: a label joins its prediction's
version, and each version's figures are summed from its own cells with its own
spec (classes, reference profile), read from the store's record of the versions
it has seen. So after a deploy the previous version's figures stay visible while
its late labels keep arriving, and the serving version is compared with it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from instrumentation.aggregates import AggregateBook
from instrumentation.aggregates.alerts import accuracy_cusum, estimated_accuracy_cusum, mae_cusum
from instrumentation.aggregates.cells import Cells
from instrumentation.aggregates.comparison import compare_rollout, compare_versions
from instrumentation.aggregates.fairness_alerts import fairness_alerts
from instrumentation.config import ROLLUP_SECONDS, MonitorConfig, Window
from instrumentation.errors import StoreUnavailable
from instrumentation.spec import ModelSpec
from instrumentation.store.buckets import bucket_of
from instrumentation.store.protocol import PredictionStore, VersionInfo
from instrumentation.store.rollout import since_rollout

logger = logging.getLogger(__name__)

NOT_COMPARABLE = "versions {a} and {b} have different tasks or classes"

Windows = dict[str, dict[str, Any]]
"""A version's reports by window name."""


class VersionReports:
    """Computes window reports per model version, and version comparisons, from the store.

    Args:
        spec: the serving version's spec; ``book`` builds its reports.
        make_book: an :class:`AggregateBook` for another version's spec.
    """

    def __init__(
        self,
        spec: ModelSpec,
        store: PredictionStore,
        config: MonitorConfig,
        *,
        book: AggregateBook,
        make_book: Callable[[ModelSpec], AggregateBook],
        clock: Callable[[], float],
        created: float | None = None,
    ) -> None:
        self.spec = spec
        self._created = created
        self.store = store
        self.config = config
        self.clock = clock
        self._make_book = make_book
        self._books: dict[str, AggregateBook] = {spec.version: book}
        self._registered = False

    def register(self) -> None:
        """Record the serving version's spec in the store once (later versions read it)."""
        if self._registered:
            return
        spec = json.dumps(self.spec.to_dict(), separators=(",", ":"))
        try:
            created = self._created if self._created is not None else self.clock()
            self.store.register_version(self.spec.name, self.spec.version, spec, now=created)
        except StoreUnavailable:
            return  # the store is down: the next report tries again
        self._registered = True

    def read(self) -> Reading:
        """One consistent read of the store for a snapshot or a gauge collection."""
        self.register()
        return Reading(self, now=self.clock(), seen=self.store.model_versions(self.spec.name))

    def windows(self) -> Windows:
        """The serving version's report for each configured window."""
        return self.read().windows(self.spec.version)

    def book(self, version: str, seen: dict[str, VersionInfo]) -> AggregateBook:
        """The book that reads ``version``'s cells, built from its recorded spec."""
        book = self._books.get(version)
        if book is not None:
            return book
        info = seen.get(version)
        if info is None:
            # No record of its spec (yet): read its cells with the serving spec, say so,
            # and look again next time.
            logger.warning("no recorded spec for model version %s; using the serving one", version)
            return self._books[self.spec.version]
        spec = ModelSpec.from_dict(json.loads(info.spec)).with_version(version)
        book = self._books[version] = self._make_book(spec)
        return book


class Reading:
    """One read of the store: one ``now``, the versions it knows, each window summed once.

    A snapshot's version reports and its comparison come from the same sums, so they
    agree, and no window of a version is summed twice.
    """

    def __init__(self, reports: VersionReports, *, now: float, seen: dict[str, VersionInfo]):
        self._reports = reports
        self._now = now
        self._seen = seen
        self._sums: dict[tuple[str, str], dict[str, float]] = {}
        self._cumulative: dict[str, float] | None = None
        spec, config = reports.spec, reports.config
        longest = max(w.seconds for w in config.windows)
        present = reports.store.versions_with_data(spec.name, since_bucket=self._since(longest))
        present.add(spec.version)
        # Newest first: created last (the model's age, given by the service, else when a
        # monitor first recorded it); a version without a record sorts last.
        self.versions = sorted(
            present, key=lambda v: -seen[v].first_seen if v in seen else float("inf")
        )
        """Versions with data in the longest window, and the serving one: newest first."""

    def _since(self, seconds: float) -> int:
        # The buckets that start inside (now - window, now]: data is never older than the
        # window, and a bucket leaves it as soon as its start does.
        width = self._reports.config.bucket_seconds
        since = bucket_of(self._now - seconds, width) + width
        if seconds > self._reports.config.rollup_after:
            # Compaction merges this edge's buckets into hour buckets, one of which
            # straddles `since` (its start before, most of its data after). Start at the
            # next hour instead, whether or not compaction has run yet: the window then
            # always covers exactly [span start, span end), never part of an hour.
            since = -(-since // ROLLUP_SECONDS) * ROLLUP_SECONDS
        return since

    def span(self, window: Window) -> tuple[int, int]:
        """``(from, to)`` in epoch seconds: the window sums exactly the data of ``[from, to)``.

        ``to`` is the end of the bucket holding the read time; ``from`` the start of
        the oldest bucket the window sums: up to one bucket after ``to - window``, and
        up to an hour after it for a window longer than ``rollup_after``.
        """
        width = self._reports.config.bucket_seconds
        since = self._since(window.seconds)
        return -(-since // width) * width, bucket_of(self._now, width) + width

    def _cells(self, version: str, window: Window) -> dict[str, float]:
        key = (version, window.name)
        if key not in self._sums:
            self._sums[key] = self._reports.store.sum_aggregates(
                self._reports.spec.name, version, since_bucket=self._since(window.seconds)
            )
        return self._sums[key]

    def windows(self, version: str) -> Windows:
        """Each configured window's report of ``version``."""
        book = self._reports.book(version, self._seen)
        return {
            w.name: {**book.report(self._cells(version, w)), **self._span_fields(w)}
            for w in self._reports.config.windows
        }

    def _span_fields(self, window: Window) -> dict[str, str]:
        start, end = self.span(window)
        return {"from": _iso(start), "to": _iso(end)}

    def all_windows(self) -> dict[str, Windows]:
        """:meth:`windows` of every version of :attr:`versions`, in that order."""
        return {version: self.windows(version) for version in self.versions}

    def default_pair(self) -> tuple[str, str] | None:
        """The newest version and the one before it, if two exist.

        Not "the serving version against the rest": during a canary two servers serve
        two versions, and whichever process computes the comparison (the gauges' lease
        holder) must report the same one — the new version against the old.
        """
        return (self.versions[0], self.versions[1]) if len(self.versions) >= 2 else None

    def comparison(self, version: str, baseline: str) -> dict[str, Any]:
        """:meth:`compare`, or the reason it cannot (``{"version", "baseline", "error"}``)."""
        try:
            return self.compare(version, baseline)
        except ValueError as exc:
            return {"version": version, "baseline": baseline, "error": str(exc)}

    def compare(self, version: str, baseline: str) -> dict[str, Any]:
        """``version`` against ``baseline`` in every window (differences ``version − baseline``).

        Raises:
            ValueError: ``NOT_COMPARABLE`` when the two have other tasks or classes.
        """
        spec_a = self._reports.book(version, self._seen).spec
        spec_b = self._reports.book(baseline, self._seen).spec
        if (spec_a.task, spec_a.classes) != (spec_b.task, spec_b.classes):
            raise ValueError(NOT_COMPARABLE.format(a=version, b=baseline))
        windows = {
            w.name: compare_versions(
                spec_a, Cells(self._cells(version, w)), Cells(self._cells(baseline, w))
            )
            for w in self._reports.config.windows
        }
        return {
            "version": version,
            "baseline": baseline,
            "windows": windows,
            "rollout": self.rollout(version, baseline),
        }

    def rollout(self, version: str, baseline: str) -> dict[str, Any]:
        """``version`` against ``baseline`` over every label since ``version`` was recorded.

        ``since``: when the store recorded ``version`` (``None`` if before it kept
        rollout cells: then since the upgrade); each figure's interval holds at every
        look at once with probability ``1 − alpha`` (:func:`compare_rollout`).
        """
        cells_a, _ = since_rollout(self._model_cells(), version, version)
        cells_b, since = since_rollout(self._model_cells(), version, baseline)
        spec = self._reports.book(version, self._seen).spec
        alpha = self._reports.config.rollout_alpha
        return {
            "since": None if since is None else _iso(int(since)),
            "alpha": alpha,
            "figures": compare_rollout(spec, Cells(cells_a), Cells(cells_b), alpha=alpha),
        }

    def _model_cells(self) -> dict[str, float]:
        if self._cumulative is None:
            self._cumulative = self._reports.store.cumulative_cells(self._reports.spec.name)
        return self._cumulative

    def alerts(self, version: str) -> dict[str, Any]:
        """``version``'s sequential alert statistics over the look-back (``aggregates.alerts``)."""
        spec = self._reports.book(version, self._seen).spec
        config = self._reports.config
        if not spec.is_classifier and config.mae_threshold is None:
            return {}
        buckets = self._reports.store.bucket_cells(
            spec.name, version, since_bucket=self._since(config.alert_lookback)
        )
        h = config.cusum_h
        if not spec.is_classifier:
            threshold, worse = config.mae_threshold, config.mae_worse
            assert threshold is not None and worse is not None  # both set (MonitorConfig)
            return {"mae_cusum": mae_cusum(buckets, threshold=threshold, worse=worse, h=h)}
        p0, p1 = config.accuracy_threshold, config.accuracy_worse
        every_label, _ = since_rollout(self._model_cells(), version, version)
        thresholds = {
            "demographic_parity": config.parity_threshold,
            "equalized_odds": config.equalized_odds_threshold,
        }
        return {
            "accuracy_cusum": accuracy_cusum(buckets, spec.classes, p0=p0, p1=p1, h=h),
            "estimated_accuracy_cusum": estimated_accuracy_cusum(
                buckets, threshold=p0, worse=p1, h=h
            ),
            "fairness": fairness_alerts(
                spec,
                Cells(every_label),
                thresholds=thresholds,
                min_samples=config.min_group_samples,
                alpha=config.rollout_alpha,
            ),
        }


def _iso(epoch: int) -> str:
    """``2026-12-02T00:00:00Z``: ISO-8601 in UTC, whole seconds."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
