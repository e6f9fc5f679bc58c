"""/healthz of a replica standing by: it runs no kopf yet, whose liveness endpoint answers once it does.

A standby must stay Ready: a rolling update waits for each new pod to be Ready, and new pods stand by
until the old holder stops.
"""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from argora_common.serving import ServerThread


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = 200 if self.path.split("?", 1)[0] == "/healthz" else 404
        body = b"standing by\n" if status == 200 else b"not found\n"
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Probes every few seconds are not worth a log line."""


class StandbyHealth:
    """Serves /healthz on `port` from `start()` to `stop()`, which frees the port for kopf's."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._serving = ServerThread("argora-standby-health")

    def start(self) -> StandbyHealth:
        self._serving.start(ThreadingHTTPServer(("0.0.0.0", self.port), _Handler))
        return self

    def stop(self) -> None:
        self._serving.stop()
