#!/usr/bin/env bash
# Regenerate requirements.lock: the runtime dependencies of pyproject.toml, every package pinned to an
# exact version with the sha256 of each of its distribution files (all platforms, so one lock serves
# amd64 and arm64 images). The Dockerfile installs it with `pip install --require-hashes --no-deps`.
#
# pip-tools runs from a throwaway virtualenv: it is not a dependency of the project.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

"$("$repo/hack/python312.sh")" -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install --quiet --upgrade pip pip-tools >&2

cd "$repo"
# --upgrade: the newest versions pyproject.toml allows, not whatever the old lock held.
CUSTOM_COMPILE_COMMAND="hack/lock.sh" "$tmp/venv/bin/pip-compile" --quiet --upgrade \
    --generate-hashes --allow-unsafe --strip-extras --no-emit-find-links --no-emit-index-url \
    --output-file requirements.lock pyproject.toml
echo "$repo/requirements.lock"
