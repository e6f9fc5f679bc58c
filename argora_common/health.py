"""/healthz of a replica standing by: it runs no kopf yet, whose liveness endpoint answers once it does.

A standby must stay Ready: a rolling update waits for each new pod to be Ready, and new pods stand by
until the old holder stops.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


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
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> StandbyHealth:
        self._server = ThreadingHTTPServer(("0.0.0.0", self.port), _Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="argora-standby-health", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
