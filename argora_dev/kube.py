"""A real Kubernetes control plane (etcd + kube-apiserver) for the integration and end-to-end tests.

The operators are tested against the genuine API server (schema validation, admission, RBAC, watch
semantics, resourceVersion conflicts) rather than a fake. Only etcd and kube-apiserver run: no
controller-manager, scheduler or kubelet, which the operators do not need. Consequences worth
knowing when writing tests:

* Namespaces can be created and used, but a deleted namespace stays `Terminating` for ever (the
  namespace controller lives in kube-controller-manager): give each test its own namespace instead.
* Garbage collection (ownerReferences cascading) does not happen, for the same reason.
* The `ServiceAccount` admission plugin is off, because nothing creates the `default` service
  accounts it insists on.

The binaries are built from the Go modules pinned in hack/testbin (hack/testbin/build.sh) and kept
in the cache folder; the upstream CRDs come from hack/upstream-crds.sh. Every server runs as a
`ManagedProcess`, so `stop_all()` ends them whatever happens to the test run.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml
from kubernetes import config as kube_config
from kubernetes.client import ApiextensionsV1Api
from kubernetes.client.exceptions import ApiException

from argora_dev import REPO_ROOT
from argora_dev.process import ManagedProcess, cache_dir, free_port, http_ok, wait_until

K8S_VERSION = "v1.35.4"  # keep in step with hack/testbin/go.mod and hack/testbin/build.sh
SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
ADMIN_USER = "argora-test-admin"

_BUILD_TIMEOUT = 3600.0  # a cold build of kube-apiserver on two cores takes many minutes
_START_TIMEOUT = 120.0
_ESTABLISHED_TIMEOUT = 60.0


def testbin_dir() -> Path:
    """The folder holding `kube-apiserver` and `etcd`, building them first when they are missing."""
    folder = cache_dir() / "testbin" / f"k8s-{K8S_VERSION}"
    if (folder / "kube-apiserver").is_file() and (folder / "etcd").is_file():
        return folder
    return Path(_run_script(REPO_ROOT / "hack" / "testbin" / "build.sh", "testbin-build"))


def go_tool(tool: str, version: str, binary: str) -> Path:
    """The path of `binary`, built from the Go module pinned in hack/<tool> by its build.sh into the
    cache folder <tool>-<version>, building it first when it is missing."""
    path = cache_dir() / f"{tool}-{version}" / binary
    if path.is_file():
        return path
    folder = Path(_run_script(REPO_ROOT / "hack" / tool / "build.sh", f"{tool}-build"))
    path = folder / binary
    if not path.is_file():
        raise RuntimeError(f"hack/{tool}/build.sh did not leave {binary} in {folder}")
    return path


def upstream_crd_files() -> list[Path]:
    """The pinned upstream CRD YAML files (ironcore BMC/BMCSecret/Server/ServerClaim, CAPI Cluster,
    IPAddress and IPAddressClaim, the CAPI in-cluster IPAM provider's GlobalInClusterIPPool, Metal3
    BareMetalHost).

    hack/upstream-crds.sh returns at once when its version-keyed cache folder is complete, and only
    otherwise downloads modules and runs controller-gen, so calling it every time is cheap.
    """
    folder = Path(_run_script(REPO_ROOT / "hack" / "upstream-crds.sh", "upstream-crds"))
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise RuntimeError(f"hack/upstream-crds.sh left no YAML files in {folder}")
    return files


def crd_files() -> list[Path]:
    """Every CRD the controllers need: the pinned upstream ones and Argora's own from the chart, as
    `make demo`, `make bench` and the tests' API server install them."""
    return [*upstream_crd_files(), *sorted((REPO_ROOT / "charts" / "argora" / "crds").glob("*.yaml"))]


def _run_script(script: Path, name: str) -> str:
    """Run a hack/ script to completion and return the last line it printed (the folder it made).

    It runs as a ManagedProcess, in its own process group, so that a timeout, Ctrl-C or `stop_all()`
    also ends the `go build` processes it spawned instead of leaving them behind. Its output goes
    to a log under the cache folder; the folder is the last line there too, because the scripts
    print it after everything else.
    """
    log = cache_dir() / "logs" / f"{name}.log"
    log.unlink(missing_ok=True)
    proc = ManagedProcess(name, [str(script)], log).start()
    try:
        deadline = time.monotonic() + _BUILD_TIMEOUT
        while proc.poll() is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{script} still running after {_BUILD_TIMEOUT:.0f}s\n{proc.log_tail()}")
            time.sleep(0.5)
        if proc.poll() != 0:
            raise RuntimeError(f"{script} failed with exit code {proc.poll()}\n{proc.log_tail()}")
        return proc.log_tail(1).strip()
    finally:
        proc.stop()


class KubeCluster:
    """etcd and kube-apiserver on loopback, all state (data, certificates, kubeconfig) in `workdir`."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.kubeconfig = workdir / "kubeconfig"
        self.server_url = ""
        # A fresh admin token per cluster, in group system:masters (which RBAC always allows).
        self.token = secrets.token_hex(24)
        self._etcd: ManagedProcess | None = None
        self._apiserver: ManagedProcess | None = None
        self._apiserver_argv: list[str] = []

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        bin_dir = testbin_dir()
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            etcd_url = self._start_etcd(bin_dir / "etcd")
            self._start_apiserver(bin_dir / "kube-apiserver", etcd_url)
            self._write_kubeconfig()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the API server before its storage; safe to call twice or after a failed start."""
        for proc in (self._apiserver, self._etcd):
            if proc is not None:
                proc.stop()
        self._apiserver = None
        self._etcd = None

    def __enter__(self) -> KubeCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _start_etcd(self, binary: Path) -> str:
        client_port, peer_port = free_port(), free_port()
        client_url = f"http://127.0.0.1:{client_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        argv = [
            str(binary),
            "--name=argora-test",
            f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=argora-test={peer_url}",
            "--initial-cluster-state=new",
            # Throw-away data: skipping fsync makes every write (and so every test) much faster.
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ]
        self._etcd = ManagedProcess("etcd", argv, self.workdir / "logs" / "etcd.log").start()
        wait_until(lambda: http_ok(f"{client_url}/health"), _START_TIMEOUT, "etcd", self._etcd)
        return client_url

    def _start_apiserver(self, binary: Path, etcd_url: str) -> None:
        port = free_port()
        self.server_url = f"https://127.0.0.1:{port}"
        tokens = self.workdir / "tokens.csv"
        # token,user,uid,"group1,group2": the static token authenticator's CSV format.
        tokens.write_text(f'{self.token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n')
        tokens.chmod(0o600)
        sa_key = self._service_account_key()
        argv = [
            str(binary),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={port}",
            # No --tls-cert-file: the server makes a CA and a serving certificate (for the
            # advertise address, 127.0.0.1) in --cert-dir; the kubeconfig trusts that CA.
            f"--cert-dir={self.workdir / 'certs'}",
            f"--token-auth-file={tokens}",
            # RBAC for real authorization decisions (SubjectAccessReviews, least-privilege roles).
            "--authorization-mode=Node,RBAC",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={sa_key}",
            f"--service-account-signing-key-file={sa_key}",
            f"--api-audiences={SERVICE_ACCOUNT_ISSUER}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            # Without kube-controller-manager no `default` ServiceAccount is ever created, and this
            # plugin would then reject every Pod.
            "--disable-admission-plugins=ServiceAccount",
        ]
        self._apiserver_argv = argv
        self._run_apiserver()

    def _run_apiserver(self) -> None:
        self._apiserver = ManagedProcess(
            "kube-apiserver", self._apiserver_argv, self.workdir / "logs" / "kube-apiserver.log"
        ).start()
        auth = {"Authorization": f"Bearer {self.token}"}
        wait_until(
            lambda: http_ok(f"{self.server_url}/readyz", auth),
            _START_TIMEOUT,
            "kube-apiserver",
            self._apiserver,
        )

    def restart_apiserver(self, down_seconds: float = 0.0) -> None:
        """Stop kube-apiserver (SIGTERM, as a rollout of the control plane does), keep it down for
        `down_seconds`, and start it again on the same port with the same etcd: clients see their
        connections and watches end, then the same server come back. Returns once it is ready."""
        assert self._apiserver is not None, "KubeCluster was not started"
        self._apiserver.stop()
        self._apiserver = None
        time.sleep(down_seconds)
        self._run_apiserver()

    def _service_account_key(self) -> Path:
        """An RSA key that both signs service account tokens and (its public half) verifies them."""
        key = self.workdir / "service-account.key"
        if not key.exists():
            # openssl is a one-shot command that ends here, hence no ManagedProcess.
            subprocess.run(
                ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(key)],
                check=True,
                capture_output=True,
                timeout=60,
            )
        return key

    def _write_kubeconfig(self) -> None:
        # The serving certificate file holds the leaf and the CA that signed it; trusting the file
        # verifies TLS properly (no insecure-skip-tls-verify warnings on every request).
        ca_file = self.workdir / "certs" / "apiserver.crt"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "argora-test", "cluster": {"server": self.server_url, "certificate-authority": str(ca_file)}}
            ],
            "users": [{"name": ADMIN_USER, "user": {"token": self.token}}],
            "contexts": [{"name": "argora-test", "context": {"cluster": "argora-test", "user": ADMIN_USER}}],
            "current-context": "argora-test",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config, sort_keys=False))
        self.kubeconfig.chmod(0o600)

    # -- CRDs -----------------------------------------------------------------------------------

    def install_crds(self, paths: Iterable[Path]) -> None:
        """Create (or replace) every CustomResourceDefinition in `paths`, then wait until each one
        is Established, i.e. its resources can be used right away."""
        api = ApiextensionsV1Api(self.api_client())
        names: list[str] = []
        for path in paths:
            for doc in yaml.safe_load_all(path.read_text()):
                if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                    continue
                name = str(doc["metadata"]["name"])
                names.append(name)
                # Plain dicts in, _preload_content=False out: the generated models choke on some
                # valid CRD fields (null conditions, for one) and would only be thrown away anyway.
                body: Any = doc
                try:
                    api.create_custom_resource_definition(body=body, _preload_content=False)
                except ApiException as exc:
                    if exc.status != 409:
                        raise
                    # Already there (a reused etcd, or the same CRD listed twice): replace it,
                    # which needs the current resourceVersion.
                    current = _json(api.read_custom_resource_definition(name, _preload_content=False))
                    version = current["metadata"]["resourceVersion"]
                    body = {**doc, "metadata": {**doc["metadata"], "resourceVersion": version}}
                    api.replace_custom_resource_definition(name, body=body, _preload_content=False)
        for name in names:
            self._wait_established(api, name)

    def _wait_established(self, api: Any, name: str) -> None:
        deadline = time.monotonic() + _ESTABLISHED_TIMEOUT
        conditions: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            crd = _json(api.read_custom_resource_definition(name, _preload_content=False))
            conditions = crd.get("status", {}).get("conditions") or []
            if any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
                return
            time.sleep(0.1)
        raise TimeoutError(f"CRD {name} not Established after {_ESTABLISHED_TIMEOUT:.0f}s: {conditions}")

    def api_client(self) -> Any:
        """A `kubernetes.client.ApiClient` authenticated as the cluster admin."""
        return kube_config.new_client_from_config(config_file=str(self.kubeconfig))


def _json(response: Any) -> dict[str, Any]:
    """The decoded body of a `_preload_content=False` response."""
    data: dict[str, Any] = json.loads(response.data)
    return data
