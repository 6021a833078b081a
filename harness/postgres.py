"""A private PostgreSQL cluster on 127.0.0.1: for unit tests, end-to-end tests and the demo.

``initdb`` into a fresh directory, then the server in the foreground as a
:class:`~harness.processes.ChildProcess` (its own process group and log file),
on a port below the ephemeral range, with its socket in that directory. initdb and
the server refuse to run as root: as root both run as the ``postgres`` user.

>>> with PostgresCluster.start_new() as cluster:  # doctest: +SKIP
...     url = cluster.url("postgres", schema="t1")  # a MONITOR_STORE_URL
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Final, Self

import psycopg

from harness.processes import ChildProcess, free_port_run

POSTGRES_MISSING: Final = (
    "PostgreSQL server binaries (initdb, postgres, pg_ctl) not found via `pg_config --bindir` "
    "or /usr/lib/postgresql/*/bin: run `make services` (deploy/install-services.sh installs "
    "the Debian postgresql package)"
)
"""Why a PostgreSQL-backed test fails (never skips) on a machine without the server."""

_SERVER_USER: Final = "postgres"


def find_bindir() -> Path:
    """The directory holding ``initdb`` and ``postgres``; raises naming what to install."""
    candidates: list[Path] = []
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        out = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=True, timeout=10
        )
        candidates.append(Path(out.stdout.strip()))
    # Newest major version first: /usr/lib/postgresql/15/bin, /usr/lib/postgresql/16/bin ...
    found = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted(
        (Path(p) for p in found),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    for bindir in candidates:
        if all((bindir / tool).is_file() for tool in ("initdb", "postgres", "pg_ctl")):
            return bindir
    raise RuntimeError(POSTGRES_MISSING)


class PostgresCluster:
    """One throw-away cluster: ``trust`` authentication, superuser ``postgres``, 127.0.0.1 only.

    Args:
        workdir: a directory of its own (data, socket and log go there); it must be
            reachable by the ``postgres`` user when running as root.
        port: the TCP port (default: a free one below 32768).
    """

    def __init__(self, workdir: Path, *, port: int | None = None) -> None:
        self.bindir = find_bindir()
        self.workdir = workdir
        self.datadir = workdir / "data"
        self.port = port if port is not None else free_port_run(1)
        self._as_root = os.geteuid() == 0
        self.process: ChildProcess | None = None

    @classmethod
    def start_new(cls) -> Self:
        """A cluster in a new directory under the system temp dir, started and ready.

        Not under pytest's ``tmp_path``: that lives in a root-only directory that the
        ``postgres`` user cannot enter.
        """
        find_bindir()  # before making a directory that would then be left behind
        workdir = Path(tempfile.mkdtemp(prefix="monitor-pg-"))
        cluster = cls(workdir)
        try:
            return cluster.start()
        except BaseException:
            cluster.stop()
            raise

    def _run_as_server_user(self, args: list[str]) -> list[str]:
        return ["runuser", "-u", _SERVER_USER, "--", *args] if self._as_root else args

    def start(self) -> Self:
        """``initdb`` (once) and start the server; return when it accepts connections."""
        if self._as_root:
            try:
                entry = pwd.getpwnam(_SERVER_USER)
            except KeyError:
                raise RuntimeError(
                    f"running as root, and no {_SERVER_USER!r} user to run the server as "
                    "(initdb refuses root); the Debian postgresql package creates it"
                ) from None
            os.chown(self.workdir, entry.pw_uid, entry.pw_gid)
        if not self.datadir.exists():
            subprocess.run(
                self._run_as_server_user(
                    [
                        str(self.bindir / "initdb"),
                        "-D",
                        str(self.datadir),
                        "-U",
                        "postgres",
                        "--auth=trust",
                        "--no-sync",  # a throw-away cluster: no fsync at creation
                    ]
                ),
                check=True,
                capture_output=True,
                timeout=120,
            )
        self.process = ChildProcess(
            "postgres",
            self._run_as_server_user(
                [
                    str(self.bindir / "postgres"),
                    "-D",
                    str(self.datadir),
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.workdir),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "max_connections=200",
                ]
            ),
            self.workdir / "log",
            self._accepts_connections,
        )
        self.process.start().wait_ready(60.0)
        return self

    def _accepts_connections(self) -> bool:
        try:
            psycopg.connect(self.url("postgres"), connect_timeout=2).close()
        except psycopg.OperationalError:
            return False
        return True

    def url(self, database: str = "postgres", *, schema: str | None = None) -> str:
        """A ``postgresql://`` URL for ``database`` (and ``?schema=``, the store's parameter)."""
        url = f"postgresql://postgres@127.0.0.1:{self.port}/{database}"
        return f"{url}?schema={schema}" if schema else url

    def create_database(self, name: str) -> str:
        """Create an empty database; return its URL."""
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop_server(self) -> None:
        """Fast shutdown (clients disconnected, no wait), keeping the data: :meth:`start` again."""
        if self.process is not None and self.process.proc is not None:
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                subprocess.run(
                    self._run_as_server_user(
                        [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "stop"]
                    ),
                    capture_output=True,
                    timeout=60,
                    check=False,
                )
            self.process.stop()

    def stop(self) -> None:
        """Shut the server down and remove the directory, data and all."""
        self.stop_server()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def log_tail(self) -> str:
        """The end of the server log (for failure messages)."""
        return self.process.log_tail() if self.process is not None else ""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
