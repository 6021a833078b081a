"""Drive a server with ``wrk`` (a separate process) and read its figures back as numbers.

A Lua script sets the method, the JSON content type and the body (read from a file),
and its ``done`` hook prints one JSON line with requests, duration, error counts and
latency percentiles, so nothing depends on wrk's human-readable report.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

_MARK = "WRK_RESULT "

_LUA = """\
local f = assert(io.open({body_path}, "rb"))
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = f:read("*a")
f:close()

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{mark}{{"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, '
      .. '"status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d, "max_us": %d}}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


@dataclass(frozen=True)
class WrkResult:
    """One wrk run's figures (latencies in seconds)."""

    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int
    p50: float
    p99: float

    @property
    def rps(self) -> float:
        """Completed requests per second."""
        return self.requests / self.seconds

    @property
    def valid(self) -> bool:
        """True when every response was 2xx/3xx and no socket error or timeout happened."""
        return self.non_2xx == 0 and self.socket_errors == 0 and self.requests > 0


def wrk_path() -> str:
    """The ``wrk`` executable; a clear error naming the install step when it is missing."""
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk not found: `make bench-tools` (or `apt-get install -y wrk`)")
    return found


def post_script(body: bytes, directory: Path, name: str) -> Path:
    """Write ``name``.json (the body) and ``name``.lua (POSTs it) under ``directory``."""
    body_path = directory / f"{name}.json"
    body_path.write_bytes(body)
    script = directory / f"{name}.lua"
    script.write_text(_LUA.format(body_path=json.dumps(str(body_path)), mark=_MARK))
    return script


def run_wrk(
    url: str,
    script: Path,
    *,
    seconds: float,
    connections: int = 8,
    threads: int = 1,
    timeout_s: float = 10.0,
) -> WrkResult:
    """``wrk -t<threads> -c<connections> -d<seconds>s --latency -s script url``, parsed.

    Args:
        url: the endpoint (loopback only).
        script: a Lua file from :func:`post_script`.
        seconds: how long to load the server.
        connections: concurrent keep-alive connections.
        threads: wrk threads.
        timeout_s: a request slower than this counts as a timeout error (wrk's default, 2 s,
            would hide a slow tail as errors).
    """
    args = [
        wrk_path(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={timeout_s:g}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    done = subprocess.run(
        args, capture_output=True, text=True, check=False, timeout=seconds + timeout_s + 30
    )
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith(_MARK)), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    raw = json.loads(line[len(_MARK) :])
    return WrkResult(
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        non_2xx=raw["status"],
        socket_errors=raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
        p50=raw["p50_us"] / 1e6,
        p99=raw["p99_us"] / 1e6,
    )
