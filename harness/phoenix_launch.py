"""Run ``phoenix serve`` with its OTLP/gRPC receiver on 127.0.0.1 instead of every interface.

Phoenix binds its HTTP server to ``PHOENIX_HOST`` but its gRPC receiver to ``[::]``
whatever the host (arize-phoenix 20.x, ``phoenix/server/grpc_server.py``). Test
servers listen on loopback only, so this wraps ``grpc.aio.server`` before handing
over to Phoenix's own command line. Run it with ``.venv-phoenix/bin/python``: it
imports Phoenix, which is not installed in the project's environment.
"""

from __future__ import annotations

import sys
from typing import Any

import grpc.aio
from phoenix.server.main import main

_grpc_server = grpc.aio.server


def _loopback_server(*args: Any, **kwargs: Any) -> Any:
    server = _grpc_server(*args, **kwargs)
    add_insecure_port = server.add_insecure_port

    def add_loopback_port(address: str) -> int:
        port = address.rpartition(":")[2]  # whatever host Phoenix asked for
        return add_insecure_port(f"127.0.0.1:{port}")

    server.add_insecure_port = add_loopback_port
    return server


grpc.aio.server = _loopback_server

if __name__ == "__main__":
    sys.argv = ["phoenix", *sys.argv[1:]]
    sys.exit(main())
