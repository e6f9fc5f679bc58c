#!/usr/bin/env bash
# Build the helm CLI the chart tests run, from the Go module pinned in hack/helm/go.mod (no release
# tarball, no install script).
#
# The binary goes to a version-keyed folder outside the repository, so a rebuild happens only when the
# pinned Helm version changes. The folder is printed on the last line of stdout.
#
#   ARGORA_CACHE   cache root (default: ~/.cache/argora)
set -euo pipefail

# Keep in step with the helm.sh/helm/v3 requirement in go.mod and HELM_VERSION in argora_dev/helm.py.
HELM_VERSION=v3.19.0

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${ARGORA_CACHE:-$HOME/.cache/argora}/helm-${HELM_VERSION}"

if [[ -x "$out/helm" ]]; then
    echo "$out"
    exit 0
fi

mkdir -p "$out"
cd "$here"

# CGO off: a static binary that does not depend on the host's libc or a C toolchain.
# GOWORK off: a go.work somewhere above must not change what gets built.
export CGO_ENABLED=0 GOWORK=off
# -mod=readonly: build exactly what go.mod/go.sum pin. -buildvcs=false: the argora checkout's git
# state is not this binary's version.
go_flags=(-mod=readonly -buildvcs=false -trimpath)

# The variables Helm's Makefile stamps for a release: without them `helm version` reports "v3.19" and
# `helm template`/`helm lint` assume Kubernetes v1.20 (.Capabilities.KubeVersion, deprecation checks)
# instead of the version of the client-go it was built with.
client_go="$(go list -mod=readonly -m -f '{{.Version}}' k8s.io/client-go)"  # e.g. v0.34.0
k8s_minor="${client_go#v0.}"; k8s_minor="${k8s_minor%%.*}"
ldflags="-s -w"
ldflags+=" -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    ldflags+=" -X ${pkg}.k8sVersionMajor=1 -X ${pkg}.k8sVersionMinor=${k8s_minor}"
done

# Build into a temporary name and rename at the end: an interrupted build must not leave a binary
# behind that the skip check above would take for a finished one.
go build "${go_flags[@]}" -ldflags "$ldflags" -o "$out/helm.tmp" helm.sh/helm/v3/cmd/helm >&2
mv -f "$out/helm.tmp" "$out/helm"

# Read the version into a variable first: `helm version | grep -q` would trip pipefail (SIGPIPE).
built_version="$("$out/helm" version --template '{{.Version}}')"
if [[ "$built_version" != "$HELM_VERSION" ]]; then
    echo "built helm reports ${built_version}, expected ${HELM_VERSION}" >&2
    exit 1
fi
echo "$out"
