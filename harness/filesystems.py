"""Real storage faults for tests: a tiny filesystem that fills up, remounted read-only.

Mounting needs root (CI runs as root); without it the fixture fails with
``NEEDS_ROOT`` rather than skipping, so a fault test can never pass by not running.
"""

from __future__ import annotations

import contextlib
import gc
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

NEEDS_ROOT = "storage-fault tests mount a tmpfs: run them as root (CI does)"


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True)


@contextlib.contextmanager
def tiny_filesystem(mountpoint: Path, *, size_kb: int = 2048) -> Iterator[Path]:
    """A size-capped tmpfs at ``mountpoint`` for the duration of the block."""
    if os.geteuid() != 0:
        raise PermissionError(NEEDS_ROOT)
    mountpoint.mkdir(parents=True, exist_ok=True)
    _run("mount", "-t", "tmpfs", "-o", f"size={size_kb}k,mode=0755", "tmpfs", str(mountpoint))
    try:
        yield mountpoint
    finally:
        _run("umount", "-l", str(mountpoint))


def fill(directory: Path) -> Path:
    """Write a filler file until the filesystem holding ``directory`` is full; return it."""
    filler = directory / "filler"
    chunk = b"\0" * 65536
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(chunk)
        except OSError:
            pass
        # Smaller writes take the last partial chunk's room too.
        try:
            while True:
                handle.write(b"\0" * 512)
        except OSError:
            pass
    return filler


def remount(mountpoint: Path, *, read_only: bool, attempts: int = 20) -> None:
    """Remount ``mountpoint`` read-only or read-write (root ignores file modes, not this).

    The kernel refuses a read-only remount while a file is open for writing there; a
    closed store's last handle may wait for the garbage collector, so collect and retry.
    """
    for attempt in range(attempts):
        try:
            _run("mount", "-o", f"remount,{'ro' if read_only else 'rw'}", str(mountpoint))
            return
        except subprocess.CalledProcessError:
            if attempt == attempts - 1:
                raise
            gc.collect()
            time.sleep(0.1)
