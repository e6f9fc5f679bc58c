#!/usr/bin/env bash
# Build the Toxiproxy server the fault tests put between a controller and NetBox or the API server,
# from the Go module pinned in hack/toxiproxy/go.mod (no release tarball, no Docker image).
#
# The binary goes to a version-keyed folder outside the repository, so a rebuild happens only when the
# pinned version changes. The folder is printed on the last line of stdout.
#
#   ARGORA_CACHE   cache root (default: ~/.cache/argora)
set -euo pipefail

# Keep in step with the github.com/Shopify/toxiproxy/v2 requirement in go.mod and TOXIPROXY_VERSION in
# argora_dev/toxiproxy.py.
TOXIPROXY_VERSION=v2.5.0

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${ARGORA_CACHE:-$HOME/.cache/argora}/toxiproxy-${TOXIPROXY_VERSION}"

if [[ -x "$out/toxiproxy-server" ]]; then
    echo "$out"
    exit 0
fi

mkdir -p "$out"
cd "$here"
# CGO off: a static binary. GOWORK off: a go.work above must not change what gets built.
export CGO_ENABLED=0 GOWORK=off
# Into a temporary name first: an interrupted build must not leave a binary the check above would take
# for a finished one.
go build -mod=readonly -buildvcs=false -trimpath -ldflags "-s -w" -o "$out/toxiproxy-server.tmp" \
    github.com/Shopify/toxiproxy/v2/cmd/server >&2
mv -f "$out/toxiproxy-server.tmp" "$out/toxiproxy-server"
echo "$out"
