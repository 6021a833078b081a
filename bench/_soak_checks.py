"""What the soak measures in the server's processes and files, and the pass/fail rules.

Kept apart from the driver (``bench/soak.py``) so the rules are read in one place.
"""

from __future__ import annotations

import math
import os
import sqlite3
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from sklearn.metrics import accuracy_score, precision_recall_fscore_support

RSS_GROWTH: Final = 0.10
"""Memory is flat when a process's last-minute median RSS is within 10% of its second minute's."""

RSS_SLACK_MIB: Final = 8.0
"""…or within 8 MiB of it (allocator noise on a small process is not a leak)."""

FD_GROWTH: Final = 4
"""Descriptors are flat when the last minute's most is within 4 of the second minute's most."""

FIGURE_TOLERANCE: Final = 1e-9
"""``GET /monitor`` figures must equal scikit-learn's to this (absolute)."""


@dataclass(frozen=True)
class ProcessSample:
    """One process's resident memory (MiB) and open descriptors at one instant."""

    pid: int
    role: str
    rss_mib: float
    fds: int


def processes_under(root: int) -> list[tuple[int, str]]:
    """``(pid, role)`` of ``root`` and every live descendant, from /proc.

    BentoML's workers run in process groups of their own, so the tree is followed
    by parent pid, not by group.
    """
    parents: dict[int, int] = {}
    roles: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        # The command may hold spaces or parentheses: fields after the last ")" are fixed.
        parents[int(entry)] = int(stat[stat.rindex(")") + 2 :].split()[1])
        text = b" ".join(cmdline).decode(errors="replace")
        roles[int(entry)] = (
            "worker" if "worker" in text else "serve" if "serve" in text else "other"
        )
    found = {root} if root in parents else set()
    grew = True
    while grew:
        children = {pid for pid, parent in parents.items() if parent in found} - found
        found |= children
        grew = bool(children)
    return [(pid, roles[pid]) for pid in sorted(found)]


def sample_process(pid: int, role: str) -> ProcessSample | None:
    """RSS and descriptor count of ``pid``, or ``None`` if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    rss_kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
    return ProcessSample(pid, role, rss_kib / 1024.0, fds)


def file_bytes(*paths: Path) -> int:
    """Total size of the files that exist among ``paths``."""
    return sum(p.stat().st_size for p in paths if p.exists())


def directory_bytes(directory: Path) -> int:
    """Total size of the files directly in ``directory`` (0 if it does not exist)."""
    if not directory.is_dir():
        return 0
    return file_bytes(*(p for p in directory.iterdir() if p.is_file()))


def stored_rows(path: Path) -> tuple[int, float | None]:
    """Rows in the store's predictions table and the oldest's creation time (read-only)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        count, oldest = conn.execute("SELECT COUNT(*), MIN(created) FROM predictions").fetchone()
    finally:
        conn.close()
    return int(count), oldest


def flat(second: Sequence[ProcessSample], last: Sequence[ProcessSample]) -> tuple[bool, str]:
    """Whether one process's memory and descriptors stayed flat, and a one-line account."""
    rss_2 = statistics.median(s.rss_mib for s in second)
    rss_n = statistics.median(s.rss_mib for s in last)
    fds_2 = max(s.fds for s in second)
    fds_n = max(s.fds for s in last)
    ok_rss = rss_n <= max(rss_2 * (1 + RSS_GROWTH), rss_2 + RSS_SLACK_MIB)
    ok_fds = fds_n <= fds_2 + FD_GROWTH
    return ok_rss and ok_fds, (
        f"RSS median {rss_2:.1f} -> {rss_n:.1f} MiB ({'ok' if ok_rss else 'GROWING'}), "
        f"fds max {fds_2} -> {fds_n} ({'ok' if ok_fds else 'GROWING'})"
    )


def figure_mismatches(
    window: dict[str, Any], y_true: Sequence[str], y_pred: Sequence[str], classes: Sequence[str]
) -> list[str]:
    """Every quality figure of ``window`` that differs from scikit-learn on the same rows."""
    quality = window["quality"]
    expected: dict[str, float] = {
        "n_labels": float(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
    }
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=list(classes), zero_division=math.nan
    )
    got: dict[str, float] = {
        "n_labels": float(window["n_labels"]),
        "accuracy": quality["accuracy"]["value"],
    }
    for i, cls in enumerate(classes):
        for name, values in (("precision", precision), ("recall", recall), ("f1", f1)):
            expected[f"{name}[{cls}]"] = float(values[i])
            got[f"{name}[{cls}]"] = quality[name]["per_class"][cls]["value"]
    return [
        f"{key}: /monitor {got[key]!r}, sklearn {value!r}"
        for key, value in expected.items()
        if not _same(got[key], value)
    ]


def _same(reported: float | None, reference: float) -> bool:
    """A reported figure equals the reference; undefined (``None``) matches only NaN."""
    if reported is None or math.isnan(reference):
        return reported is None and math.isnan(reference)
    return abs(reported - reference) <= FIGURE_TOLERANCE
