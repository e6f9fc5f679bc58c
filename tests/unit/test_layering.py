"""Which code may import which, read from the sources' imports (nothing is imported here).

Production packages (what the wheel ships) never import the development package, the tests or hack/:
the images hold none of them. docker-compose's seed job runs hack/seed_demo.py and the argora_dev
modules it uses in the production image, so everything it imports must come with the project's
runtime dependencies. The production modules import each other without cycles (at import time: top-level
imports), so that modules split out of one another stay layered.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from collections.abc import Iterator
from importlib.metadata import distribution, packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from argora_dev import REPO_ROOT

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
PRODUCTION = sorted(p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"])
DEVELOPMENT = ("argora_dev", "tests", "hack")
SEED_JOB = "hack.seed_demo"  # docker-compose.yml's seed service runs `python -m hack.seed_demo`


def module_name(path: Path, root: Path = REPO_ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, root: Path = REPO_ROOT) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in the file under `root`, also inside functions,
    and of importlib.import_module / __import__ calls with a literal name."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            yield node.lineno, module
            for alias in node.names:  # `from package import submodule`
                yield node.lineno, f"{module}.{alias.name}"
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in {"import_module", "__import__"} and isinstance(node.args[0].value, str):
                yield node.lineno, node.args[0].value


def forbidden(path: Path, root: Path = REPO_ROOT) -> list[str]:
    return [
        f"{path.relative_to(root)}:{line}: {module}"
        for line, module in imports(path, root)
        if module.split(".")[0] in DEVELOPMENT
    ]


def test_the_production_packages_are_the_controllers_and_their_common_code() -> None:
    assert PRODUCTION == [
        "argora_common",
        "ipaddress_controller",
        "ippool_controller",
        "ironcore_controller",
        "metal3_controller",
        "update_controller",
    ]
    assert not set(PRODUCTION) & set(DEVELOPMENT)


@pytest.mark.parametrize("package", PRODUCTION)
def test_production_code_never_imports_development_code(package: str) -> None:
    files = sorted((REPO_ROOT / package).rglob("*.py"))
    assert files, f"no sources under {package}/"
    found = [hit for path in files for hit in forbidden(path)]
    assert not found, "production code imports development code:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "source",
    [
        "import argora_dev.kube",
        "from argora_dev import REPO_ROOT",
        "from tests.conftest import prefix",
        "def f():\n    import hack.demo",
        "import importlib\nimportlib.import_module('argora_dev.seed')",
        "if True:\n    from hack import demo",
    ],
)
def test_the_check_sees_each_kind_of_import(source: str, tmp_path: Path) -> None:
    """The walk above must not pass for want of seeing an import: a planted one is found."""
    planted = tmp_path / "argora_common" / "deep" / "planted.py"
    planted.parent.mkdir(parents=True)
    planted.write_text(source + "\n")
    assert forbidden(planted, tmp_path)


def test_relative_imports_resolve_within_their_package(tmp_path: Path) -> None:
    planted = tmp_path / "argora_common" / "deep" / "planted.py"
    planted.parent.mkdir(parents=True)
    planted.write_text("from . import sibling\nfrom ..settings import Settings\n")
    assert {module for _, module in imports(planted, tmp_path)} == {
        "argora_common.deep",
        "argora_common.deep.sibling",
        "argora_common.settings",
        "argora_common.settings.Settings",
    }
    assert not forbidden(planted, tmp_path)


# -- docker-compose's seed job runs in the production image ------------------------------------------


def first_party_file(module: str) -> Path | None:
    base = REPO_ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def runtime_import_names() -> set[str]:
    """Top-level import names that the project's runtime dependencies (no extras) provide, transitively."""
    wanted = [Requirement(line) for line in PYPROJECT["project"]["dependencies"]]
    dists: set[str] = set()
    while wanted:
        req = wanted.pop()
        name = canonicalize_name(req.name)
        if name in dists or (req.marker is not None and not req.marker.evaluate({"extra": ""})):
            continue
        dists.add(name)
        wanted.extend(Requirement(line) for line in distribution(name).requires or [])
    return {top for top, owners in packages_distributions().items() if dists & {canonicalize_name(o) for o in owners}}


def test_the_seed_job_needs_only_the_runtime_dependencies() -> None:
    first_party = {*PRODUCTION, *DEVELOPMENT}
    allowed = runtime_import_names() | set(sys.stdlib_module_names) | first_party
    seen: set[str] = set()
    queue = [SEED_JOB]
    outside: list[str] = []
    while queue:
        module = queue.pop()
        path = first_party_file(module)
        if module in seen or path is None:
            continue
        seen.add(module)
        for line, imported in imports(path):
            top = imported.split(".")[0]
            if top in first_party:
                queue.extend(".".join(imported.split(".")[:n]) for n in range(1, imported.count(".") + 2))
            elif top not in allowed:
                outside.append(f"{path.relative_to(REPO_ROOT)}:{line}: {imported}")
    assert "argora_dev.demo_inventory" in seen and "argora_dev.seed" in seen, sorted(seen)
    assert "tests" not in {m.split(".")[0] for m in seen}, "the seed job must not need the test suite"
    assert not outside, "the seed job imports what the production image lacks:\n" + "\n".join(outside)


# -- no import cycles among the production modules ----------------------------------------------------


def module_imports(path: Path) -> set[str]:
    """First-party production modules that `path` imports when it is imported (its top-level imports)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            names = [module, *(f"{module}.{alias.name}" for alias in node.names)]
        else:
            continue
        found.update(name for name in names if name.split(".")[0] in PRODUCTION and first_party_file(name))
    return found


def test_production_modules_import_each_other_without_cycles() -> None:
    graph = {
        module_name(path): module_imports(path) - {module_name(path)}
        for package in PRODUCTION
        for path in sorted((REPO_ROOT / package).rglob("*.py"))
    }
    assert "argora_common.netbox.session" in graph and "argora_common.status" in graph
    done: set[str] = set()

    def visit(module: str, trail: list[str]) -> None:
        if module in trail:
            raise AssertionError("import cycle: " + " -> ".join([*trail[trail.index(module) :], module]))
        if module in done:
            return
        for imported in sorted(graph.get(module, ())):
            visit(imported, [*trail, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
