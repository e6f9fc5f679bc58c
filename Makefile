# Argora: `make demo` shows the operators at work on a local API server and NetBox;
# `make test` runs the whole suite (ruff, mypy, unit, integration and end-to-end tests).
# Both install what they need first; built tools and NetBox live in $(ARGORA_CACHE), outside the repo.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
ARGORA_CACHE ?= $(HOME)/.cache/argora
export ARGORA_CACHE

.PHONY: venv tools test lint unit demo bench faults crds clean images

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || "$$(hack/python312.sh)" -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

## Test servers: kube-apiserver + etcd, helm and Toxiproxy built from Go modules, upstream CRDs, NetBox with
## PostgreSQL and Redis.
tools:
	hack/testbin/build.sh
	hack/helm/build.sh
	hack/toxiproxy/build.sh
	hack/upstream-crds.sh
	hack/netbox/install.sh

# The docs site is built into a temporary directory (not the tree): --strict fails on a broken link or anchor.
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/argora-crds --check
	$(VENV)/bin/mkdocs build --strict --quiet --site-dir $(or $(TMPDIR),/tmp)/argora-site

unit: venv
	$(VENV)/bin/pytest -q tests/unit

# Fails fast: lint and the unit tier (a minute or two on a fresh clone) before the servers are built.
test: venv lint unit tools
	$(VENV)/bin/pytest -q -ra --durations=15 --ignore=tests/unit

demo: venv tools
	$(PY) -m hack.demo

crds: venv
	$(VENV)/bin/argora-crds

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

## Not part of `make test`: the controllers against large inventories (see hack/bench.py for the cases;
## CASES="scale update" runs the 10,000-device ones). Seeded databases are cached. A run that completes
## writes its tables into docs/reports/benchmarks.md.
bench: venv tools
	ARGORA_BENCH_REPORT=docs/reports/benchmarks.md $(PY) -m hack.bench $(CASES)

## Not part of `make test`: every fault scenario (tests/faults) against 1,000 imported devices, with NetBox
## and the API server behind Toxiproxy and the HTTP fault layer; prints the table of what Argora survives
## and, when every scenario passed, writes it into docs/reports/faults.md.
faults: venv tools
	ARGORA_FAULTS_REPORT=docs/reports/faults.md $(VENV)/bin/pytest -q -ra tests/faults -m "faults or not faults"

## Not part of `make test`: the five controller images argora-<name>:$(IMAGE_TAG), from the Dockerfile, with
## buildah (no daemon needed; --isolation chroot) or else docker. BASE=… builds from another base than the
## Dockerfile's pinned one (e.g. BASE=python:3.12-slim, or hack/images/local-base.sh's stand-in offline);
## IMAGE_BUILD_FLAGS adds flags to each build (e.g. buildah's -v for a pip.conf behind a proxy).
CONTROLLERS := ironcore metal3 update ippool ipaddress
IMAGE_TAG ?= dev
IMAGE_VERSION ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGE_BUILD_FLAGS ?=
BASE ?=

images:
	@if command -v buildah >/dev/null; then build="buildah bud --isolation chroot --layers"; \
	elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then build="docker build"; \
	elif command -v docker >/dev/null; then \
		echo "make images: docker is installed but its daemon does not answer, and there is no buildah" >&2; exit 1; \
	else echo "make images: neither buildah nor docker is installed (apt-get install buildah)" >&2; exit 1; fi; \
	for name in $(CONTROLLERS); do \
		echo "== argora-$$name:$(IMAGE_TAG) ($$build)"; \
		$$build --target "$$name" --build-arg CONTROLLER="$$name" --build-arg VERSION=$(IMAGE_VERSION) \
			$(if $(BASE),--build-arg BASE=$(BASE)) $(IMAGE_BUILD_FLAGS) -t "argora-$$name:$(IMAGE_TAG)" . || exit 1; \
	done
