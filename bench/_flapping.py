"""An OTLP endpoint that flaps: forwards to a receiver, refuses, or accepts and never answers.

The server under test keeps one address (:attr:`FlappingEndpoint.port` on 127.0.0.1)
while the backend behind it changes, as a collector does when it restarts or hangs:

- ``up``: every connection is forwarded byte for byte to the real receiver;
- ``down``: nothing listens, connections are refused;
- ``blackhole``: connections are accepted and never read from nor answered.

Every mode change cuts the connections of the mode before, as a restart would.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Final, Literal

Mode = Literal["up", "down", "blackhole"]

MODES: Final[tuple[Mode, ...]] = ("up", "down", "blackhole")

UNKNOWN_MODE: Final = "mode must be one of up, down, blackhole; got {mode!r}"


def _close(sock: socket.socket) -> None:
    """Shut down (which wakes a thread blocked in ``recv``), then close."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


class FlappingEndpoint:
    """A TCP endpoint on 127.0.0.1 in front of the receiver listening on ``target_port``.

    Args:
        port: the port to listen on (the server's ``OTEL_EXPORTER_OTLP_ENDPOINT``).
        target_port: the real receiver's port, reached in ``up`` mode.
    """

    def __init__(self, port: int, target_port: int) -> None:
        self.port = port
        self.mode: Mode = "down"
        self._target = target_port
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._open: list[socket.socket] = []

    def set_mode(self, mode: Mode) -> None:
        """Switch to ``mode``, cutting every connection made before."""
        if mode not in MODES:
            raise ValueError(UNKNOWN_MODE.format(mode=mode))
        with self._lock:
            for sock in self._open:
                _close(sock)
            self._open = []
            if mode == "down" and self._listener is not None:
                _close(self._listener)
                self._listener = None
            if mode != "down" and self._listener is None:
                listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                listener.bind(("127.0.0.1", self.port))
                listener.listen(64)
                self._listener = listener
                threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
            self.mode = mode

    def close(self) -> None:
        """Stop listening and cut every connection."""
        self.set_mode("down")

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # the listener was closed: "down"
            with self._lock:
                if self._listener is not listener:
                    _close(conn)
                    return
                self._open.append(conn)
                if self.mode == "blackhole":
                    continue  # held open, never read
                try:
                    upstream = socket.create_connection(("127.0.0.1", self._target), timeout=5)
                except OSError:
                    _close(conn)
                    continue
                upstream.settimeout(None)
                self._open.append(upstream)
            for source, sink in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy ``source`` to ``sink`` until either side ends; then end both."""
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        _close(source)
        _close(sink)
