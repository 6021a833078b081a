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
from typing import Any

from instrumentation.aggregates import AggregateBook
from instrumentation.aggregates.cells import Cells
from instrumentation.aggregates.comparison import compare_versions
from instrumentation.config import MonitorConfig
from instrumentation.spec import ModelSpec
from instrumentation.store.base import PredictionStore, VersionInfo, bucket_of, is_unavailable

logger = logging.getLogger(__name__)

NOT_COMPARABLE = "versions {a} and {b} have different tasks or classes"
UNKNOWN_VERSION = "version {version} has no data in the longest window"

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
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            return  # the store is down: the next report tries again
        self._registered = True

    def _since(self, seconds: float) -> int:
        # The buckets that start inside (now - window, now]: data is never older than the
        # window, and a bucket leaves it as soon as its start does.
        width = self.config.bucket_seconds
        return bucket_of(self.clock() - seconds, width) + width

    def _sums(self, version: str, seconds: float) -> dict[str, float]:
        return self.store.sum_aggregates(self.spec.name, version, since_bucket=self._since(seconds))

    def windows(self, version: str | None = None) -> Windows:
        """Each configured window's report of ``version`` (default: the serving one)."""
        version = version or self.spec.version
        book = self._book(version, self.store.model_versions(self.spec.name))
        return {w.name: book.report(self._sums(version, w.seconds)) for w in self.config.windows}

    def versions(self) -> list[str]:
        """Versions with data in the longest window, and the serving one: newest first.

        Newest means created last (the model's age, given by the service, else when a
        monitor first recorded it); a version the store has no record of (data written
        before versions were recorded) sorts last.
        """
        longest = max(w.seconds for w in self.config.windows)
        seen = self.store.model_versions(self.spec.name)
        present = self.store.versions_with_data(self.spec.name, since_bucket=self._since(longest))
        present.add(self.spec.version)
        return sorted(present, key=lambda v: -seen[v].first_seen if v in seen else float("inf"))

    def all_windows(self) -> dict[str, Windows]:
        """:meth:`windows` of every version of :meth:`versions`, in that order."""
        self.register()
        return {version: self.windows(version) for version in self.versions()}

    @staticmethod
    def default_pair(versions: list[str]) -> tuple[str, str] | None:
        """The newest version and the one before it (``versions`` newest first), if two exist.

        Not "the serving version against the rest": during a canary two servers serve
        two versions, and whichever process computes the comparison (the gauges' lease
        holder) must report the same one — the new version against the old.
        """
        return (versions[0], versions[1]) if len(versions) >= 2 else None

    def compare(self, version: str, baseline: str) -> dict[str, Any]:
        """``version`` against ``baseline`` in every window (differences ``version − baseline``).

        Raises:
            ValueError: ``NOT_COMPARABLE`` when the two have other tasks or classes.
        """
        seen = self.store.model_versions(self.spec.name)
        spec_a = self._book(version, seen).spec
        spec_b = self._book(baseline, seen).spec
        if (spec_a.task, spec_a.classes) != (spec_b.task, spec_b.classes):
            raise ValueError(NOT_COMPARABLE.format(a=version, b=baseline))
        windows = {
            w.name: compare_versions(
                spec_a,
                Cells(self._sums(version, w.seconds)),
                Cells(self._sums(baseline, w.seconds)),
            )
            for w in self.config.windows
        }
        return {"version": version, "baseline": baseline, "windows": windows}

    def _book(self, version: str, seen: dict[str, VersionInfo]) -> AggregateBook:
        book = self._books.get(version)
        if book is not None:
            return book
        info = seen.get(version)
        if info is None:
            # No record of its spec: read its cells with the serving spec (and say so once).
            logger.warning("no recorded spec for model version %s; using the serving one", version)
            book = self._books[version] = self._books[self.spec.version]
            return book
        spec = ModelSpec.from_dict(json.loads(info.spec)).with_version(version)
        book = self._books[version] = self._make_book(spec)
        return book
