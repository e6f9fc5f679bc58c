"""Toxiproxy between a controller and NetBox or the API server, for the fault tests.

The server is built from the Go module pinned in hack/toxiproxy (hack/toxiproxy/build.sh), once per
version into the cache folder, like kube-apiserver and helm, and runs as a ManagedProcess. The tests
drive it through its HTTP API: a `Proxy` listens on a free loopback port and forwards to the real
server; toxics (latency, reset_peer, timeout, bandwidth, limit_data, …) change what passes through it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import requests

from argora_dev.kube import go_tool
from argora_dev.process import ManagedProcess, free_port, http_ok, wait_until

TOXIPROXY_VERSION = "v2.5.0"  # keep in step with hack/toxiproxy/go.mod and hack/toxiproxy/build.sh

type Stream = Literal["upstream", "downstream"]


def toxiproxy_binary() -> Path:
    """The path of `toxiproxy-server`, building it first when it is missing."""
    return go_tool("toxiproxy", TOXIPROXY_VERSION, "toxiproxy-server")


class Proxy:
    """One proxy of a Toxiproxy server: `address` (host:port on loopback) forwards to its upstream."""

    def __init__(self, api: str, name: str, address: str) -> None:
        self.api = api
        self.name = name
        self.address = address

    def url(self, scheme: str = "http") -> str:
        return f"{scheme}://{self.address}"

    def add_toxic(
        self, name: str, kind: str, attributes: Mapping[str, Any], stream: Stream = "downstream", toxicity: float = 1.0
    ) -> None:
        """Add a toxic, e.g. `add_toxic("cut", "reset_peer", {"timeout": 0})`; `toxicity` is the share of
        connections it applies to."""
        body = {"name": name, "type": kind, "stream": stream, "toxicity": toxicity, "attributes": dict(attributes)}
        _check(requests.post(f"{self.api}/proxies/{self.name}/toxics", json=body, timeout=10))

    def remove_toxic(self, name: str) -> None:
        _check(requests.delete(f"{self.api}/proxies/{self.name}/toxics/{name}", timeout=10))

    def set_enabled(self, enabled: bool) -> None:
        """Disabled, the proxy closes its connections and refuses new ones: the server is gone."""
        _check(requests.post(f"{self.api}/proxies/{self.name}", json={"enabled": enabled}, timeout=10))


class Toxiproxy:
    """A Toxiproxy server on loopback, with its log under `workdir`."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.api = ""
        self._process: ManagedProcess | None = None

    def start(self) -> Toxiproxy:
        port = free_port()
        self.api = f"http://127.0.0.1:{port}"
        argv = [str(toxiproxy_binary()), "-host", "127.0.0.1", "-port", str(port)]
        self._process = ManagedProcess("toxiproxy", argv, self.workdir / "logs" / "toxiproxy.log").start()
        wait_until(lambda: http_ok(f"{self.api}/version"), 30, "toxiproxy", self._process)
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None

    def proxy(self, name: str, upstream: str) -> Proxy:
        """A new proxy to `upstream` (host:port) on a free loopback port."""
        listen = f"127.0.0.1:{free_port()}"
        body = {"name": name, "listen": listen, "upstream": upstream, "enabled": True}
        created = _check(requests.post(f"{self.api}/proxies", json=body, timeout=10))
        return Proxy(self.api, name, str(created.get("listen") or listen))


def _check(response: requests.Response) -> dict[str, Any]:
    if response.status_code >= 300:
        raise RuntimeError(
            f"toxiproxy {response.request.method} {response.url}: {response.status_code} {response.text}"
        )
    return dict(response.json()) if response.content else {}
