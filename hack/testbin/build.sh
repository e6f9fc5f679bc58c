#!/usr/bin/env bash
# Build the kube-apiserver and etcd the integration tests run against, from the Go modules pinned in
# hack/testbin/go.mod (no container image, no downloaded release tarball).
#
# The binaries go to a version-keyed folder outside the repository, so a rebuild happens only when the
# pinned Kubernetes version changes. The folder is printed on the last line of stdout.
#
#   ARGORA_CACHE   cache root (default: ~/.cache/argora)
set -euo pipefail

K8S_VERSION=v1.35.4
# Must match the go.etcd.io/etcd/server/v3 requirement of k8s.io/apiserver at K8S_VERSION (see go.mod).
ETCD_VERSION=v3.6.5

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${ARGORA_CACHE:-$HOME/.cache/argora}/testbin/k8s-${K8S_VERSION}"

if [[ -x "$out/kube-apiserver" && -x "$out/etcd" ]]; then
    echo "$out"
    exit 0
fi

mkdir -p "$out"
cd "$here"

# CGO off: static binaries that do not depend on the host's libc or a C toolchain.
# GOWORK off: a go.work somewhere above must not change what gets built.
export CGO_ENABLED=0 GOWORK=off
# -mod=readonly: build exactly what go.mod/go.sum pin. -buildvcs=false: the argora checkout's git
# state is not these binaries' version (and stamping it needs a trusted git repository).
go_flags=(-mod=readonly -buildvcs=false -trimpath)

major="${K8S_VERSION#v}"; major="${major%%.*}"
minor="${K8S_VERSION#v*.}"; minor="${minor%%.*}"
build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
# The same variables Kubernetes' hack/lib/version.sh stamps: without them /version reports
# v0.0.0-master and clients that check the server version misbehave.
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    k8s_ldflags+=" -X ${pkg}.gitVersion=${K8S_VERSION}"
    k8s_ldflags+=" -X ${pkg}.gitMajor=${major}"
    k8s_ldflags+=" -X ${pkg}.gitMinor=${minor}"
    k8s_ldflags+=" -X ${pkg}.gitTreeState=clean"
    k8s_ldflags+=" -X ${pkg}.buildDate=${build_date}"
done

# Build into temporary names and rename at the end: an interrupted build must not leave a binary
# behind that the skip check above would take for a finished one.
go build "${go_flags[@]}" -ldflags "$k8s_ldflags" -o "$out/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver >&2
go build "${go_flags[@]}" -ldflags "-s -w" -o "$out/etcd.tmp" go.etcd.io/etcd/server/v3 >&2
mv -f "$out/kube-apiserver.tmp" "$out/kube-apiserver"
mv -f "$out/etcd.tmp" "$out/etcd"

# Read the version into a variable first: `etcd --version | grep -q` would trip pipefail (SIGPIPE).
etcd_version="$("$out/etcd" --version)"
if [[ "$etcd_version" != *"etcd Version: ${ETCD_VERSION#v}"* ]]; then
    echo "built etcd is not ${ETCD_VERSION}: ${etcd_version%%$'\n'*}" >&2
    exit 1
fi
echo "$out"
