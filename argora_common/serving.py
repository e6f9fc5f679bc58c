"""An HTTP server answering from a thread of its own while the process goes on: the standby's /healthz,
NetBox's webhooks, and the test tooling's servers all start and stop theirs this way."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer


class ServerThread:
    """Runs a server's `serve_forever` in a daemon thread named `name` from `start(server)` to `stop()`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._server: ThreadingHTTPServer | None = None

    def start(self, server: ThreadingHTTPServer) -> None:
        # Neither the serving thread nor one answering a request may keep the process from exiting.
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, name=self.name, daemon=True).start()

    def stop(self) -> None:
        """Stops serving and closes the socket, so the port is free at once; nothing when not serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
