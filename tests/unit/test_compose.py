"""docker-compose.yml, checked without Docker: what it builds, configures, mounts and waits for."""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from argora_common.settings import ENV_PREFIX, Settings
from argora_dev import REPO_ROOT
from argora_dev.dockerfile import Dockerfile
from ipaddress_controller.__main__ import CONTROLLER as IPADDRESS
from ippool_controller.__main__ import CONTROLLER as IPPOOL
from ironcore_controller.__main__ import CONTROLLER as IRONCORE
from metal3_controller.__main__ import CONTROLLER as METAL3
from update_controller.__main__ import CONTROLLER as UPDATE

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
SETTINGS: dict[str, type[Settings]] = {c.name: c.settings_class for c in (IRONCORE, METAL3, UPDATE, IPPOOL, IPADDRESS)}
CONTROLLERS = tuple(SETTINGS)
# The controllers that write to NetBox; the others get the read-only token.
WRITERS = {"update", "ipaddress"}


def service(name: str) -> dict[str, Any]:
    assert name in SERVICES, f"no service {name}"
    return SERVICES[name]


def controller(name: str) -> dict[str, Any]:
    return service(f"argora-{name}")


def environment(svc: dict[str, Any]) -> dict[str, str]:
    """A service's environment, from either of compose's forms (mapping or KEY=value list)."""
    env = svc.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {str(key): str(value) for key, value in env.items()}


def depends_on(svc: dict[str, Any]) -> dict[str, str]:
    deps = svc.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def build_args(svc: dict[str, Any]) -> dict[str, str]:
    args = (svc.get("build") or {}).get("args") or {}
    if isinstance(args, list):
        return dict(item.split("=", 1) for item in args)
    return {str(key): str(value) for key, value in args.items()}


def mounts(svc: dict[str, Any]) -> list[tuple[str, PurePosixPath, bool]]:
    """(source, target, read-only) of each volume in short syntax; bind sources resolved to absolute."""
    result = []
    for entry in svc.get("volumes") or []:
        assert isinstance(entry, str), f"long volume syntax not understood here: {entry}"
        source, target, *options = entry.split(":")
        if source.startswith((".", "/")):
            source = str((REPO_ROOT / source).resolve())
        result.append((source, PurePosixPath(target), "ro" in options))
    return result


def volume_holding(svc: dict[str, Any], path: str) -> tuple[str, PurePosixPath]:
    """The mount (source, target) under which `path` lies in the service's container."""
    candidates = [(src, target) for src, target, _ in mounts(svc) if PurePosixPath(path).is_relative_to(target)]
    assert candidates, f"{path} is on no volume of the service"
    return max(candidates, key=lambda m: len(m[1].parts))


def command_text(svc: dict[str, Any]) -> str:
    parts: list[str] = []
    for key in ("entrypoint", "command"):
        value = svc.get(key) or []
        parts.extend([value] if isinstance(value, str) else [str(v) for v in value])
    return " ".join(parts)


# -- controllers: build, settings ---------------------------------------------------------------------


@pytest.mark.parametrize("name", CONTROLLERS)
def test_controller_builds_from_the_dockerfile_with_its_controller_arg(name: str) -> None:
    svc = controller(name)
    build = svc["build"]
    assert isinstance(build, dict), "build needs args, so the long form"
    assert (REPO_ROOT / build.get("context", ".")).resolve() == REPO_ROOT
    assert build.get("dockerfile", "Dockerfile") == "Dockerfile"
    assert build_args(svc)["CONTROLLER"] == name
    assert build.get("target", name) == name
    # The image's own entrypoint (the console script) runs: nothing in compose replaces it.
    assert "entrypoint" not in svc and "command" not in svc
    dockerfile = Dockerfile.read()
    assert dockerfile.expand(dockerfile.stages[-1].base, build_args(svc)) == name
    assert Path(dockerfile.entrypoint(dockerfile.stage(name))[0]).name == f"argora-{name}"


def test_settings_classes_read_the_argora_prefix() -> None:
    for cls in SETTINGS.values():
        assert cls.model_config.get("env_prefix") == ENV_PREFIX == "ARGORA_"


@pytest.mark.parametrize("name", CONTROLLERS)
def test_every_argora_variable_is_a_setting_of_that_controller(name: str) -> None:
    known = {ENV_PREFIX + field.upper() for field in SETTINGS[name].model_fields}
    env = environment(controller(name))
    unknown = sorted(key for key in env if key.startswith(ENV_PREFIX) and key not in known)
    assert not unknown, f"argora-{name} has no such settings: {unknown}"


@pytest.mark.parametrize("name", CONTROLLERS)
def test_controller_environment_is_valid_configuration(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The values parse: load the settings class from exactly this environment (the token file,
    written by the seed job at run time, replaced by a stand-in)."""
    env = environment(controller(name))
    assert "ARGORA_NETBOX_URL" in env
    assert ("ARGORA_NETBOX_TOKEN" in env) != ("ARGORA_NETBOX_TOKEN_FILE" in env)
    for key in [k for k in os.environ if k.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith(ENV_PREFIX):
            monkeypatch.setenv(key, value)
    if "ARGORA_NETBOX_TOKEN_FILE" in env:
        token_file = tmp_path / "token"
        token_file.write_text("nbt_abc.def\n")
        monkeypatch.setenv("ARGORA_NETBOX_TOKEN_FILE", str(token_file))
    try:
        SETTINGS[name]()
    except ValidationError as error:
        pytest.fail(f"argora-{name}: {error}")


def test_only_the_controllers_that_write_to_netbox_get_the_write_token() -> None:
    files = {
        name: PurePosixPath(environment(controller(name))["ARGORA_NETBOX_TOKEN_FILE"]).name for name in CONTROLLERS
    }
    assert {name for name, file in files.items() if file == "write"} == WRITERS
    assert {files[name] for name in CONTROLLERS if name not in WRITERS} == {"read"}


# -- dependencies and volumes -------------------------------------------------------------------------


def test_every_dependency_is_a_service() -> None:
    for name, svc in SERVICES.items():
        missing = sorted(set(depends_on(svc)) - set(SERVICES))
        assert not missing, f"{name} depends on missing services {missing}"


def test_every_named_volume_is_declared() -> None:
    declared = set(COMPOSE.get("volumes") or {})
    for name, svc in SERVICES.items():
        for source, _, _ in mounts(svc):
            if not source.startswith("/"):
                assert source in declared, f"{name} mounts undeclared volume {source}"


def test_every_bind_mount_exists_in_the_repository() -> None:
    for name, svc in SERVICES.items():
        for source, _, _ in mounts(svc):
            if source.startswith("/"):
                assert Path(source).exists(), f"{name} mounts missing {source}"
                assert Path(source).is_relative_to(REPO_ROOT), f"{name} mounts {source} outside the repository"


def test_no_dependency_cycles() -> None:
    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"dependency cycle: {' -> '.join((*path, name))}"
        for dep in depends_on(SERVICES[name]):
            if dep in SERVICES:  # a missing one is test_every_dependency_is_a_service's to report
                visit(dep, (*path, name))

    for name in SERVICES:
        visit(name, ())


# -- Kubernetes: k3s, CRDs, kubeconfig ----------------------------------------------------------------


def k3s_services() -> list[str]:
    return [name for name, svc in SERVICES.items() if str(svc.get("image", "")).startswith("rancher/k3s:")]


def crd_jobs() -> list[str]:
    crds = str((REPO_ROOT / "charts" / "argora" / "crds").resolve())
    return [name for name, svc in SERVICES.items() if any(source == crds for source, _, _ in mounts(svc))]


def k3s_server() -> str:
    servers = [name for name in k3s_services() if "server" in command_text(SERVICES[name]).split()]
    assert len(servers) == 1, f"expected one k3s server, found {servers}"
    return servers[0]


def test_chart_crds_are_applied_to_k3s() -> None:
    jobs = crd_jobs()
    assert len(jobs) == 1, f"expected one service mounting charts/argora/crds, found {jobs}"
    job = SERVICES[jobs[0]]
    crds = str((REPO_ROOT / "charts" / "argora" / "crds").resolve())
    target = next(str(t) for s, t, _ in mounts(job) if s == crds)
    assert re.search(rf"kubectl apply\b[^\n]*-f {re.escape(target)}(\s|/|$)", command_text(job)), command_text(job)
    assert depends_on(job).get(k3s_server()) == "service_healthy"
    assert job.get("restart") == "no"
    assert sorted(Path(crds).glob("*.yaml")), "the chart has no CRDs"


def test_upstream_crds_match_the_versions_the_tests_pin() -> None:
    script = (REPO_ROOT / "hack" / "upstream-crds.sh").read_text()
    pins = dict(
        re.findall(r"^(METAL_OPERATOR|CLUSTER_API|IPAM_IN_CLUSTER|BMO_APIS)=\S+@(v[\d.]+)$", script, flags=re.MULTILINE)
    )
    text = command_text(SERVICES[crd_jobs()[0]])
    assert f"/metal-operator/{pins['METAL_OPERATOR']}/" in text
    assert f"/cluster-api/{pins['CLUSTER_API']}/" in text
    assert f"/cluster-api-ipam-provider-in-cluster/{pins['IPAM_IN_CLUSTER']}/" in text
    assert f"/baremetal-operator/{pins['BMO_APIS']}/" in text
    # The same files as the script installs for the tests (its `files=(...)` list), by name, both ways.
    listed = re.search(r"^files=\((.*?)^\)", script, flags=re.MULTILINE | re.DOTALL)
    assert listed is not None, "hack/upstream-crds.sh has no files=(...) list"
    applied = re.findall(r"-f https://\S+/([^/\s]+\.yaml)(?=\s|$)", text)
    assert sorted(applied) == sorted(listed.group(1).split())


def test_crd_job_reads_the_kubeconfig_k3s_writes() -> None:
    server = SERVICES[k3s_server()]
    output = environment(server)["K3S_KUBECONFIG_OUTPUT"]
    assert environment(server).get("K3S_KUBECONFIG_MODE") == "644"
    volume, target = volume_holding(server, output)
    job = SERVICES[crd_jobs()[0]]
    job_path = next(PurePosixPath(t) for s, t, _ in mounts(job) if s == volume)
    inside_job = str(job_path / PurePosixPath(output).relative_to(target))
    assert f"--kubeconfig {inside_job}" in command_text(job)
    assert "--tls-san=k3s" in command_text(server)
    assert "--server https://k3s:6443" in command_text(job)


@pytest.mark.parametrize("name", CONTROLLERS)
def test_controller_waits_for_the_crds_and_uses_the_kubeconfig_the_job_writes(name: str) -> None:
    svc = controller(name)
    job_name = crd_jobs()[0]
    assert depends_on(svc).get(job_name) == "service_completed_successfully"
    kubeconfig = environment(svc)["KUBECONFIG"]
    volume, target = volume_holding(svc, kubeconfig)
    job = SERVICES[job_name]
    job_target = next(t for s, t, ro in mounts(job) if s == volume and not ro)
    written = str(job_target / PurePosixPath(kubeconfig).relative_to(target))
    assert f"> {written}" in command_text(job)


# -- NetBox and the seed job --------------------------------------------------------------------------


def seed_job() -> str:
    jobs = [name for name, svc in SERVICES.items() if "hack.seed_demo" in command_text(svc)]
    assert len(jobs) == 1, jobs
    return jobs[0]


def test_netbox_stack() -> None:
    netbox = service("netbox")
    assert str(netbox["image"]).startswith("netboxcommunity/netbox:v4.")
    env = environment(netbox)
    for required in ("DB_HOST", "DB_PASSWORD", "REDIS_HOST", "SECRET_KEY", "SUPERUSER_NAME", "SUPERUSER_PASSWORD"):
        assert required in env
    assert service(env["DB_HOST"])["image"].startswith("postgres:15")
    assert env["DB_PASSWORD"] == environment(service(env["DB_HOST"]))["POSTGRES_PASSWORD"]
    assert service(env["REDIS_HOST"])["image"].startswith("redis:")
    assert set(depends_on(netbox)) == {env["DB_HOST"], env["REDIS_HOST"]}
    assert len(env["SECRET_KEY"]) >= 50 and len(env["API_TOKEN_PEPPER_1"]) >= 50
    config = (REPO_ROOT / "hack" / "compose" / "netbox_config.py").resolve()
    assert (str(config), PurePosixPath("/etc/netbox/config/argora.py"), True) in mounts(netbox)


def test_seed_job_seeds_the_netbox_the_controllers_read() -> None:
    job = SERVICES[seed_job()]
    args = job["command"]
    url = args[args.index("--url") + 1]
    assert {environment(controller(name))["ARGORA_NETBOX_URL"] for name in CONTROLLERS} == {url}
    assert depends_on(job) == {"netbox": "service_healthy"}
    assert environment(job)["NETBOX_PASSWORD"] == environment(service("netbox"))["SUPERUSER_PASSWORD"]
    assert args[args.index("--username") + 1] == environment(service("netbox"))["SUPERUSER_NAME"]
    # `python -m hack.seed_demo` from the checkout, mounted read-only as the working directory: the
    # image holds neither hack/ nor the argora_dev package the job imports.
    assert (str(REPO_ROOT), PurePosixPath(job["working_dir"]), True) in mounts(job)
    assert (REPO_ROOT / "hack" / "seed_demo.py").is_file()
    assert (REPO_ROOT / "argora_dev" / "demo_inventory.py").is_file()
    assert job.get("restart") == "no"


def test_seed_job_reuses_the_argora_update_image() -> None:
    """The job needs only the image's Python and the locked packages: argora-update's image has them,
    a build of its own would build the same Dockerfile a sixth time."""
    job = SERVICES[seed_job()]
    assert "build" not in job
    assert job["image"] == controller("update")["image"]
    assert job.get("pull_policy") == "never", "the image is built by argora-update, in no registry"


@pytest.mark.parametrize("name", CONTROLLERS)
def test_controller_reads_the_token_the_seed_job_writes(name: str) -> None:
    svc = controller(name)
    assert depends_on(svc).get(seed_job()) == "service_completed_successfully"
    token_file = environment(svc)["ARGORA_NETBOX_TOKEN_FILE"]
    volume, target = volume_holding(svc, token_file)
    job = SERVICES[seed_job()]
    args = job["command"]
    token_dir = PurePosixPath(args[args.index("--token-dir") + 1])
    assert volume_holding(job, str(token_dir))[0] == volume
    assert PurePosixPath(token_file).relative_to(target).parent == PurePosixPath(".")
    assert token_dir == volume_holding(job, str(token_dir))[1]


@pytest.mark.parametrize("name", CONTROLLERS)
def test_controller_runs_with_a_read_only_root_filesystem(name: str) -> None:
    svc = controller(name)
    assert svc.get("read_only") is True
    assert "/tmp" in svc.get("tmpfs", [])
    assert all(ro for source, _, ro in mounts(svc)), "controllers only read their volumes"
