"""A local, bounded spool for predictions the store could not take, replayed in order.

When the store is unreachable (PostgreSQL down) or cannot write (disk full, a
read-only file, a lock held past its timeout), a prediction the model made is
still answered: its rows go to a JSON-lines file on local disk and are replayed,
oldest first, once the store takes writes again. Each process appends to its own
file and holds an exclusive ``flock`` on it for its life, so a file whose owner died
(``kill -9``, a crash) is found unlocked and replayed by any other process sharing
the directory.

Durability: an entry is written and flushed to the operating system before the
prediction is acknowledged, so it survives the process being killed (as SQLite's
``synchronous=NORMAL`` does); it is not fsynced, so a power loss may take the last
entries. The spool is bounded (``max_bytes``): past it a prediction is served but
reported as not recorded, never silently dropped.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

from instrumentation.errors import MonitorError

logger = logging.getLogger(__name__)

FILE_PREFIX: Final = "spool-"
FILE_SUFFIX: Final = ".jsonl"

Entry = dict[str, Any]
"""One spooled request: ``{"records": [...], "features": [...]}`` (JSON-ready)."""


class Unavailable(MonitorError):
    """Raised by a replay callback: the store still cannot take writes; stop, retry later."""


@dataclass(frozen=True)
class ReplayOutcome:
    """What one replay pass did: entries applied, and whether entries are left over."""

    applied: int
    pending: int


class Spool:
    """Append-only spool files in ``directory``; this process owns one of them.

    Args:
        directory: shared by the processes of one host (created if missing).
        owner: a name unique to this process (its ``service.instance.id``).
        max_bytes: the most all spool files in ``directory`` may hold together.
    """

    def __init__(self, directory: Path, *, owner: str, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._path = directory / f"{FILE_PREFIX}{owner}{FILE_SUFFIX}"
        self._file: IO[str] | None = None
        self._pending = 0

    @property
    def pending(self) -> int:
        """Entries this process appended and has not replayed yet."""
        return self._pending

    def host_pending(self) -> int:
        """Entries waiting in every spool file of the directory (every process of this host)."""
        total = 0
        for path in self._files():
            with contextlib.suppress(OSError), open(path, encoding="utf-8") as handle:
                total += sum(1 for line in handle if line.strip())
        return total

    def append(self, entry: Entry) -> bool:
        """Write ``entry``; False (nothing written) when past ``max_bytes`` or the write fails."""
        line = json.dumps(entry, separators=(",", ":")) + "\n"
        with self._lock:
            try:
                if self._used_bytes() + len(line.encode()) > self.max_bytes:
                    return False
                handle = self._own()
                handle.write(line)
                handle.flush()  # in the OS before the prediction is acknowledged
            except OSError as exc:
                logger.error("prediction spool %s cannot be written: %s", self._path, exc)
                return False
            self._pending += 1
            return True

    def replay(self, apply: Callable[[Entry], None]) -> ReplayOutcome:
        """Hand every spooled entry to ``apply``, oldest first: own file, then orphans'.

        ``apply`` raises :class:`Unavailable` when the store still cannot take
        writes: the pass stops and the entry stays for the next one. Applied entries
        are removed; any other exception from ``apply`` propagates after the file is
        rewritten with the entries not yet applied.
        """
        applied = 0
        with self._lock:
            if self._pending:
                done, left = self._replay_file(self._path, self._own(), apply)
                applied += done
                self._pending = left
                if left:
                    return ReplayOutcome(applied, left)
            for path in self._orphans():
                with _locked(path) as handle:
                    if handle is None:
                        continue  # its owner is alive, or another process took it
                    done, left = self._replay_file(path, handle, apply)
                    applied += done
                    if left:
                        return ReplayOutcome(applied, left)
                    path.unlink(missing_ok=True)
        return ReplayOutcome(applied, 0)

    def close(self) -> None:
        """Release this process's file (entries stay on disk for whoever replays them)."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
            if self._pending == 0:
                self._path.unlink(missing_ok=True)

    # --- internals --------------------------------------------------------------------------

    def _own(self) -> IO[str]:
        if self._file is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            handle = open(self._path, "a+", encoding="utf-8")  # noqa: SIM115  # held for life
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._file = handle
        return self._file

    def _files(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob(f"{FILE_PREFIX}*{FILE_SUFFIX}"))

    def _orphans(self) -> list[Path]:
        return [path for path in self._files() if path != self._path]

    def _used_bytes(self) -> int:
        total = 0
        for path in self._files():
            with contextlib.suppress(OSError):
                total += path.stat().st_size
        return total

    @staticmethod
    def _replay_file(
        path: Path, handle: IO[str], apply: Callable[[Entry], None]
    ) -> tuple[int, int]:
        handle.seek(0)
        lines = [line for line in handle.read().splitlines() if line.strip()]
        done = 0
        try:
            for line in lines:
                apply(json.loads(line))
                done += 1
        except Unavailable:
            pass
        finally:
            left = lines[done:]
            if done:
                # Rewritten in place through the locked handle: the lock stays with the
                # file. A crash mid-rewrite can replay an applied entry again, which
                # ModelMonitor's replay recognises as already stored.
                handle.seek(0)
                handle.truncate()
                handle.write("".join(f"{line}\n" for line in left))
                handle.flush()
                os.fsync(handle.fileno())
        return done, len(left)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[IO[str] | None]:
    """``path`` opened and exclusively locked, or None when another process holds it."""
    try:
        handle = open(path, "r+", encoding="utf-8")  # noqa: SIM115  # closed below
    except OSError:
        yield None
        return
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield None
            return
        yield handle
    finally:
        handle.close()
