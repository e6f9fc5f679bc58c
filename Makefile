# Argora: `make demo` shows the operators at work on a local API server and NetBox;
# `make test` runs the whole suite (ruff, mypy, unit, integration and end-to-end tests).
# Both install what they need first; built tools and NetBox live in $(ARGORA_CACHE), outside the repo.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
ARGORA_CACHE ?= $(HOME)/.cache/argora
export ARGORA_CACHE

.PHONY: venv tools test lint unit demo bench faults crds clean

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
