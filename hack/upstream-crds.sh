#!/usr/bin/env bash
# Fetch the upstream CRDs the operators read and write, pinned, from Go modules via the module proxy: the
# tests install the real schemas (validation, scope, storage version), never hand-written stand-ins.
#
#   metal.ironcore.dev     BMC, BMCSecret,        github.com/ironcore-dev/metal-operator     config/crd/bases
#                          Server, ServerClaim
#   cluster.x-k8s.io       Cluster                sigs.k8s.io/cluster-api                    core/config/crd/bases
#   ipam.cluster.x-k8s.io  IPAddress,             sigs.k8s.io/cluster-api                    core/config/crd/bases
#                          IPAddressClaim
#   ipam.cluster.x-k8s.io  GlobalInClusterIPPool  sigs.k8s.io/cluster-api-ipam-provider-in-cluster
#                                                                                            config/crd/bases
#   metal3.io              BareMetalHost          generated with controller-gen from the pinned Go types of
#                                                 github.com/metal3-io/baremetal-operator/apis (that module
#                                                 ships no YAML, and the repository's root module, which
#                                                 does, is not served by the proxy)
#
# The files go to a folder keyed by the pinned versions, outside the repository; the folder is
# printed on the last line of stdout. Nothing is fetched when that folder is already complete.
#
#   ARGORA_CACHE   cache root (default: ~/.cache/argora)
set -euo pipefail

METAL_OPERATOR=github.com/ironcore-dev/metal-operator@v0.3.0
CLUSTER_API=sigs.k8s.io/cluster-api@v1.14.2
# GlobalInClusterIPPool v1alpha2, the version argora-ippool writes; the newest release the proxy serves.
IPAM_IN_CLUSTER=sigs.k8s.io/cluster-api-ipam-provider-in-cluster@v1.1.0
BMO_APIS=github.com/metal3-io/baremetal-operator/apis@v0.11.0
# controller-gen's version is pinned by hack/crdgen/go.mod; it is part of the key because it shapes
# the generated BareMetalHost schema.
CONTROLLER_TOOLS=v0.18.0

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
key="metal-operator-${METAL_OPERATOR##*@}_cluster-api-${CLUSTER_API##*@}_ipam-in-cluster-${IPAM_IN_CLUSTER##*@}_bmo-apis-${BMO_APIS##*@}_controller-tools-${CONTROLLER_TOOLS}"
out="${ARGORA_CACHE:-$HOME/.cache/argora}/crds/${key}"
files=(
    metal.ironcore.dev_bmcs.yaml
    metal.ironcore.dev_bmcsecrets.yaml
    metal.ironcore.dev_servers.yaml
    metal.ironcore.dev_serverclaims.yaml
    cluster.x-k8s.io_clusters.yaml
    ipam.cluster.x-k8s.io_ipaddresses.yaml
    ipam.cluster.x-k8s.io_ipaddressclaims.yaml
    ipam.cluster.x-k8s.io_globalinclusterippools.yaml
    metal3.io_baremetalhosts.yaml
)

complete=true
for f in "${files[@]}"; do
    [[ -s "$out/$f" ]] || complete=false
done
if $complete; then
    echo "$out"
    exit 0
fi

export GOWORK=off
# sum.golang.org has no checksum for the baremetal-operator apis module (the proxy serves it all the
# same); skip the checksum database for that one module path only.
export GONOSUMDB="${GONOSUMDB:+$GONOSUMDB,}github.com/metal3-io/baremetal-operator"

tmp="$(mktemp -d)"
trap 'chmod -R u+w "$tmp" 2>/dev/null || true; rm -rf "$tmp"' EXIT

# module_dir MODULE@VERSION: download into the module cache and print its directory there.
module_dir() {
    local json dir
    # Outside any module (in $tmp), so no go.mod around here takes part.
    json="$(cd "$tmp" && go mod download -json "$1")"
    dir="$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"$json")"
    if [[ -z "$dir" || ! -d "$dir" ]]; then
        echo "go mod download $1 gave no directory:" >&2
        echo "$json" >&2
        return 1
    fi
    echo "$dir"
}

# Staged next to the final folder (same file system), so the last rename is atomic.
mkdir -p "$(dirname "$out")"
stage="$(mktemp -d "$out.partial.XXXXXX")"
trap 'chmod -R u+w "$tmp" 2>/dev/null || true; rm -rf "$tmp" "$stage"' EXIT

metal_dir="$(module_dir "$METAL_OPERATOR")"
install -m 0644 "$metal_dir/config/crd/bases/metal.ironcore.dev_bmcs.yaml" "$stage/"
install -m 0644 "$metal_dir/config/crd/bases/metal.ironcore.dev_bmcsecrets.yaml" "$stage/"
install -m 0644 "$metal_dir/config/crd/bases/metal.ironcore.dev_servers.yaml" "$stage/"
install -m 0644 "$metal_dir/config/crd/bases/metal.ironcore.dev_serverclaims.yaml" "$stage/"

capi_dir="$(module_dir "$CLUSTER_API")"
install -m 0644 "$capi_dir/core/config/crd/bases/cluster.x-k8s.io_clusters.yaml" "$stage/"
install -m 0644 "$capi_dir/core/config/crd/bases/ipam.cluster.x-k8s.io_ipaddresses.yaml" "$stage/"
install -m 0644 "$capi_dir/core/config/crd/bases/ipam.cluster.x-k8s.io_ipaddressclaims.yaml" "$stage/"

ipam_dir="$(module_dir "$IPAM_IN_CLUSTER")"
install -m 0644 "$ipam_dir/config/crd/bases/ipam.cluster.x-k8s.io_globalinclusterippools.yaml" "$stage/"

# BareMetalHost: controller-gen needs the package inside a module it can `go list`, and the module
# cache is read-only, so generate from a writable copy of the pinned apis module (its own go.mod and
# go.sum resolve its dependencies).
bmo_dir="$(module_dir "$BMO_APIS")"
cp -r "$bmo_dir" "$tmp/apis"
chmod -R u+w "$tmp/apis"
(cd "$here/crdgen" && CGO_ENABLED=0 go build -o "$tmp/controller-gen" sigs.k8s.io/controller-tools/cmd/controller-gen)
# Into a variable first: `controller-gen --version | grep -q` would trip pipefail (SIGPIPE).
cg_version="$("$tmp/controller-gen" --version)"
if [[ "$cg_version" != *"$CONTROLLER_TOOLS"* ]]; then
    echo "controller-gen is $cg_version, not $CONTROLLER_TOOLS: update hack/crdgen/go.mod and this script together" >&2
    exit 1
fi
# The options of baremetal-operator's own Makefile (CRD_OPTIONS): allowDangerousTypes for the float
# clock speeds in HardwareDetails.
(cd "$tmp/apis" && "$tmp/controller-gen" crd:allowDangerousTypes=true,crdVersions=v1 \
    paths=./metal3.io/v1alpha1/... output:crd:dir="$tmp/gen")
install -m 0644 "$tmp/gen/metal3.io_baremetalhosts.yaml" "$stage/"

# Publish the finished folder in one rename, so an interrupted run never looks complete.
chmod 0755 "$stage"
rm -rf "$out"
mv "$stage" "$out"
echo "$out"
