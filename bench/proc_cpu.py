"""CPU seconds of a process tree, from ``/proc``: what a server spends per request.

Read before and after a round: the difference over the requests served is the CPU
one request costs the tree (the ``bentoml serve`` parent and its workers; the
PostgreSQL postmaster and its backends). User plus system time of every live
process in the tree, plus the times of children each has reaped (a backend that
ended, a worker restarted): a process's time moves into its parent's when it
exits, so nothing is counted twice or lost.
"""

from __future__ import annotations

import os
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, int] | None:
    """``(ppid, utime + stime + cutime + cstime in ticks)``, or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the name may hold spaces and parentheses
    return int(fields[1]), sum(int(f) for f in fields[11:15])


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU seconds of ``root`` and its descendants (reaped ones included)."""
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (found := _stat(int(entry))) is not None:
            stats[int(entry)] = found
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += stats[pid][1]
            todo += children.get(pid, [])
    return total / _TICKS
