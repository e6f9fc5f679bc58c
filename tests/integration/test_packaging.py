"""The container image, proven as far as it can be without a container engine.

The Dockerfile's build is two pip commands: the lock file with `--require-hashes --no-deps`, then the
project with `--no-deps`. Here they run in a fresh Python 3.12 virtualenv, on a copy of exactly the
files the Dockerfile copies; then each controller's console script must start from it, `pip check`
must find nothing missing, the development package must be absent, and the lock must hold exactly
what the project needs. A wheel built from the whole checkout must hold only the production packages.
The Dockerfile's stages are read to check what a build would produce: entrypoints, user, base image,
labels.

Needs PyPI (or pip's cache) for the locked packages and for setuptools, the build backend.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import Distribution, distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

from argora_common.settings import Settings
from argora_dev import REPO_ROOT
from argora_dev.dockerfile import Dockerfile

pytestmark = pytest.mark.integration

CONTROLLERS = ("ironcore", "metal3", "update", "ippool", "ipaddress")
# What the wheel and the images ship; the development package argora_dev, tests/ and hack/ stay out.
PRODUCTION_PACKAGES = {
    "argora_common",
    "ironcore_controller",
    "metal3_controller",
    "update_controller",
    "ippool_controller",
    "ipaddress_controller",
}
DEVELOPMENT_PACKAGES = ("argora_dev", "tests", "hack")
LOCK = REPO_ROOT / "requirements.lock"
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
SCRIPTS: dict[str, str] = PYPROJECT["project"]["scripts"]
# What a fresh virtualenv brings along, which the lock need not (and must not) list.
VENV_TOOLS = {"pip", "setuptools", "wheel"}
_PIP_TIMEOUT = 600


@dataclass
class Venv:
    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    def run(self, *args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        # The project's own virtualenv (pytest's interpreter) must not leak into this one.
        for name in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"):
            env.pop(name, None)
        env = {k: v for k, v in env.items() if not k.startswith("ARGORA_")}
        return subprocess.run(
            list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def distributions(self) -> dict[NormalizedName, Distribution]:
        site = next((self.root / "lib").glob("python3.*/site-packages"))
        return {canonicalize_name(d.metadata["Name"]): d for d in distributions(path=[str(site)])}


def python312() -> str:
    """The same interpreter `make venv` uses (hack/python312.sh knows where to look)."""
    result = subprocess.run(
        [str(REPO_ROOT / "hack" / "python312.sh")], capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"no Python 3.12: {result.stderr.strip()}")
    return result.stdout.strip()


def dockerfile_copies(dockerfile: Dockerfile, destination: Path) -> Path:
    """Copy what the build stage's COPY instructions copy (from the build context, the repository)
    to the same places under `destination`; return where the project's sources landed."""
    build = dockerfile.stage("build")
    project_dir: Path | None = None
    for args in build.all("COPY"):
        words = args.split()
        assert not any(word.startswith("--") for word in words), f"COPY option not understood here: {args}"
        *sources, target = words
        for source in sources:
            src = REPO_ROOT / source
            dst = destination / target.lstrip("/")
            if target.endswith("/"):
                dst = dst / src.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(src, dst)
            if source == "pyproject.toml":
                project_dir = dst.parent
    assert project_dir is not None, "the build stage does not copy pyproject.toml"
    return project_dir


def pip_installs(dockerfile: Dockerfile) -> list[list[str]]:
    """The build stage's `pip install` commands, as argument lists after `install`."""
    commands: list[list[str]] = []
    for run in dockerfile.runs(dockerfile.stage("build")):
        for command in run.split("&&"):
            words = shlex.split(command)
            if len(words) > 2 and words[0].endswith("/pip") and words[1] == "install":
                commands.append(words[2:])
    return commands


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return Dockerfile.read()


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, dockerfile: Dockerfile) -> Iterator[Venv]:
    """A fresh virtualenv with the image's contents, installed by the Dockerfile's own pip commands."""
    work = tmp_path_factory.mktemp("packaging")
    context = work / "context"
    project_dir = dockerfile_copies(dockerfile, context)
    venv = Venv(work / "venv")
    created = subprocess.run(
        [python312(), "-m", "venv", str(venv.root)], capture_output=True, text=True, timeout=120, check=False
    )
    assert created.returncode == 0, created.stderr

    installs = pip_installs(dockerfile)
    assert installs == [
        ["--require-hashes", "--no-deps", "-r", "/build/requirements.lock"],
        ["--no-deps", "/build/src"],
    ], f"the Dockerfile's pip commands changed: update this test too ({installs})"
    for args in installs:
        # Paths in the image map to the copy of the build context.
        local = [str(context / arg.lstrip("/")) if arg.startswith("/build/") else arg for arg in args]
        result = venv.run(str(venv.root / "bin" / "pip"), "install", "--quiet", *local, timeout=_PIP_TIMEOUT)
        assert result.returncode == 0, f"pip install {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    assert (project_dir / "pyproject.toml").is_file()
    yield venv


# -- (a) the image's commands give working console scripts -------------------------------------------


@pytest.mark.parametrize("controller", CONTROLLERS)
def test_console_script_starts_from_the_locked_install(venv: Venv, controller: str, tmp_path: Path) -> None:
    script = venv.root / "bin" / f"argora-{controller}"
    before = {p for p in venv.root.rglob("*")}
    # From an unrelated folder, so that nothing is imported from the repository checkout.
    result = venv.run(str(script), "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"usage: argora-{controller}" in result.stdout
    assert "ARGORA_NETBOX_URL" in result.stdout
    # Nothing written into the installation at start (the image's root filesystem is read-only).
    assert {p for p in venv.root.rglob("*")} == before


def test_the_project_comes_from_the_venv_not_the_checkout(venv: Venv, tmp_path: Path) -> None:
    result = venv.run(str(venv.python), "-c", "import argora_common; print(argora_common.__file__)", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).is_relative_to(venv.root)


@pytest.mark.parametrize("package", DEVELOPMENT_PACKAGES)
def test_the_image_holds_no_development_code(venv: Venv, package: str, tmp_path: Path) -> None:
    result = venv.run(str(venv.python), "-c", f"import {package}", cwd=tmp_path)
    assert result.returncode != 0 and "ModuleNotFoundError" in result.stderr, f"{package} is importable"


@pytest.fixture(scope="module")
def checkout_wheel(venv: Venv, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from the whole checkout (every file git knows of, not only those the Dockerfile
    copies), as `pip wheel .` or `python -m build` would build it."""
    work = tmp_path_factory.mktemp("wheel")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        timeout=60,
        check=True,
    )
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = REPO_ROOT / name
        if source.is_file():  # not a tracked file deleted in the working tree
            target = work / "checkout" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    pip = str(venv.root / "bin" / "pip")
    dist = work / "dist"
    result = venv.run(
        pip, "wheel", "--quiet", "--no-deps", "--wheel-dir", str(dist), str(work / "checkout"), timeout=_PIP_TIMEOUT
    )
    assert result.returncode == 0, f"pip wheel failed:\n{result.stdout}\n{result.stderr}"
    (wheel,) = dist.glob("argora-*.whl")
    return wheel


def test_the_wheel_holds_only_the_production_packages(checkout_wheel: Path) -> None:
    with zipfile.ZipFile(checkout_wheel) as wheel:
        tops = {name.split("/")[0] for name in wheel.namelist()}
    packages = {top for top in tops if not top.endswith((".dist-info", ".data"))}
    assert packages == PRODUCTION_PACKAGES, f"the wheel holds {sorted(packages)}"


# -- (b) the lock holds exactly the runtime dependencies ---------------------------------------------


def test_pip_check_finds_every_requirement_met(venv: Venv) -> None:
    result = venv.run(str(venv.root / "bin" / "pip"), "check")
    assert result.returncode == 0, result.stdout + result.stderr


def locked_packages() -> dict[NormalizedName, str]:
    pins = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", LOCK.read_text(), flags=re.MULTILINE)
    return {canonicalize_name(name): version for name, version in pins}


def needed_packages(dists: dict[NormalizedName, Distribution]) -> set[NormalizedName]:
    """Every distribution the installed project requires, transitively, on this platform."""
    needed: set[NormalizedName] = set()
    queue: list[tuple[NormalizedName, frozenset[str]]] = [(canonicalize_name("argora"), frozenset())]
    seen: set[tuple[NormalizedName, frozenset[str]]] = set()
    while queue:
        name, extras = queue.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        assert name in dists, f"{name} is required but not installed"
        for line in dists[name].requires or []:
            req = Requirement(line)
            if req.marker is not None and not any(req.marker.evaluate({"extra": extra}) for extra in {"", *extras}):
                continue
            dep = canonicalize_name(req.name)
            needed.add(dep)
            queue.append((dep, frozenset(req.extras)))
    return needed


def test_lock_holds_exactly_the_runtime_dependencies(venv: Venv) -> None:
    dists = venv.distributions()
    locked = locked_packages()
    needed = needed_packages(dists)
    assert set(locked) == needed, (
        f"not needed but locked: {sorted(set(locked) - needed)}; needed but not locked: {sorted(needed - set(locked))}"
    )
    installed = set(dists) - VENV_TOOLS - {canonicalize_name("argora")}
    assert installed == set(locked)
    for name, version in locked.items():
        assert dists[name].version == version, name


def test_every_locked_package_carries_hashes() -> None:
    blocks = re.split(r"\n(?=[A-Za-z0-9])", LOCK.read_text())
    pinned = [block for block in blocks if re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*==", block)]
    assert pinned, "requirements.lock pins nothing"
    for block in pinned:
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", block), block.splitlines()[0]


def test_lock_pins_the_direct_dependencies_within_pyproject_ranges() -> None:
    locked = locked_packages()
    for line in PYPROJECT["project"]["dependencies"]:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        assert name in locked, f"{req.name} is a dependency but not in requirements.lock"
        assert req.specifier.contains(locked[name], prereleases=True), f"{name}=={locked[name]} is outside {req}"


# -- (c) the Dockerfile's stages --------------------------------------------------------------------


@pytest.mark.parametrize("controller", CONTROLLERS)
def test_each_controller_stage_runs_its_console_script(dockerfile: Dockerfile, controller: str) -> None:
    stage = dockerfile.stage(controller)
    entrypoint = dockerfile.entrypoint(stage)
    assert entrypoint, f"stage {controller} has no ENTRYPOINT"
    script = Path(entrypoint[0])
    assert script.name == f"argora-{controller}"
    assert script.name in SCRIPTS, f"{script.name} is not a console script of pyproject.toml"
    # The path is where the build stage's virtualenv puts console scripts.
    venv_dirs = [run.split()[-1] for run in dockerfile.runs(dockerfile.stage("build")) if "-m venv" in run]
    assert str(script.parent) in [f"{d}/bin" for d in venv_dirs]
    assert dockerfile.last(stage, "CMD") is None, "a CMD would be passed to the controller as arguments"


@pytest.mark.parametrize("controller", CONTROLLERS)
def test_each_controller_image_runs_as_non_root(dockerfile: Dockerfile, controller: str) -> None:
    user = dockerfile.last(dockerfile.stage(controller), "USER")
    assert user is not None, "no USER: the image would run as root"
    uid, _, gid = user.partition(":")
    assert uid == "65532" and gid in {"", "65532"}, user


@pytest.mark.parametrize("controller", CONTROLLERS)
def test_each_controller_image_is_python_3_12_slim(dockerfile: Dockerfile, controller: str) -> None:
    stage = dockerfile.stage(controller)
    # The official image, pinned by digest (the tag only says which release the digest is).
    assert re.fullmatch(r"python:3\.12(\.\d+)?-slim(-bookworm)?@sha256:[0-9a-f]{64}", dockerfile.base_image(stage))
    assert dockerfile.pairs(stage, "ENV").get("PYTHONDONTWRITEBYTECODE") == "1"
    labels = dockerfile.pairs(stage, "LABEL")
    assert labels["org.opencontainers.image.source"] == "${SOURCE}"
    assert labels["org.opencontainers.image.version"] == "${VERSION}"
    assert labels["org.opencontainers.image.title"] == f"argora-{controller}"


@pytest.mark.parametrize("controller", CONTROLLERS)
def test_each_controller_image_exposes_the_default_ports(dockerfile: Dockerfile, controller: str) -> None:
    exposed = {
        int(port) for s in dockerfile.chain(dockerfile.stage(controller)) for a in s.all("EXPOSE") for port in a.split()
    }
    fields = Settings.model_fields
    assert exposed == {fields[f"{kind}_port"].default for kind in ("health", "webhook", "metrics")}


def test_the_runtime_image_has_the_standard_librarys_bytecode(dockerfile: Dockerfile) -> None:
    """The root filesystem is read-only: Python cannot cache what it compiles, so whatever was not
    compiled at build time is compiled again at every start."""
    runs = dockerfile.stage("runtime").all("RUN")
    assert any("compileall" in run and "/usr/local/lib/python3.12" in run for run in runs), runs


def test_the_runtime_image_knows_its_user(dockerfile: Dockerfile) -> None:
    """kopf names a standalone operator after getpass.getuser(): a uid without an /etc/passwd entry
    stops it with a KeyError at start."""
    runtime = dockerfile.stage("runtime")
    uid, _, gid = (dockerfile.last(runtime, "USER") or "").partition(":")
    runs = " ".join(runtime.all("RUN"))
    assert f"useradd --system --uid {uid} --gid {gid or uid}" in runs
    assert f"groupadd --system --gid {gid or uid}" in runs


def test_build_stage_uses_the_same_base_image(dockerfile: Dockerfile) -> None:
    # The virtualenv is copied between stages: its interpreter must be the same Python in both.
    runtime = dockerfile.chain(dockerfile.stage("ironcore"))[0]
    assert dockerfile.base_image(dockerfile.stage("build")) == dockerfile.expand(runtime.base)


def test_default_target_is_the_stage_named_by_controller(dockerfile: Dockerfile) -> None:
    final = dockerfile.stages[-1]
    assert final.name is None and final.base == "${CONTROLLER}"
    assert dockerfile.global_args.get("CONTROLLER") in CONTROLLERS
    for controller in CONTROLLERS:
        assert dockerfile.expand(final.base, {"CONTROLLER": controller}) == controller


def test_dockerignore_lets_through_what_the_dockerfile_copies(dockerfile: Dockerfile) -> None:
    lines = [line.strip() for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()]
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert "*" in lines, ".dockerignore should be an allow-list"
    copied = {source for args in dockerfile.stage("build").all("COPY") for source in args.split()[:-1]}
    assert copied == allowed
