#!/usr/bin/env bash
# A stand-in for docker.io/library/python:3.12-slim on a machine that cannot pull it (no registry
# access, no Docker daemon), so that `make images` can be tried there. NOT used by CI or releases:
# those build FROM the official image by digest (see the Dockerfile).
#
# What it makes, close to the official slim image: Debian bookworm (debootstrap --variant=minbase from
# a Debian mirror) with the runtime libraries CPython's extension modules link against, ca-certificates,
# netbase and tzdata, and a CPython 3.12 in /usr/local copied from a local build (pyenv's by default),
# without its tests, tkinter/idle and, like the official image, without any .pyc files. PATH and LANG
# as in the official image. Committed with buildah as docker.io/library/python:3.12-slim; the Dockerfile
# pins the official image by digest, so the build is pointed at the stand-in with BASE:
#
#   sudo hack/images/local-base.sh                      # needs root, buildah and debootstrap
#   PYTHON_HOME=/opt/python3.12 MIRROR=http://mirror.example/debian hack/images/local-base.sh
#   make images BASE=docker.io/library/python:3.12-slim
#
# Behind a TLS-intercepting proxy, pip in the build needs the host's CA bundle (buildah only):
#   make images BASE=... IMAGE_BUILD_FLAGS="-v /etc/pip.conf:/etc/pip.conf:ro -v /etc/ssl/certs:/etc/ssl/certs:ro"
set -euo pipefail

MIRROR=${MIRROR:-http://deb.debian.org/debian}
PYTHON_HOME=${PYTHON_HOME:-$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12.* 2>/dev/null | sort -V | tail -1)}
WORK=${WORK:-/var/tmp/argora-base}
IMAGE=${IMAGE:-docker.io/library/python:3.12-slim}
ROOTFS=$WORK/rootfs

die() { echo "local-base.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (debootstrap and chroot)"
command -v buildah >/dev/null || die "buildah is not installed (apt-get install buildah)"
command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
[ -x "$PYTHON_HOME/bin/python3.12" ] || die "no CPython 3.12 at PYTHON_HOME=$PYTHON_HOME"
version=$("$PYTHON_HOME/bin/python3.12" -c 'import platform; print(platform.python_version())')

if [ ! -e "$ROOTFS/etc/debian_version" ]; then
    rm -rf "$ROOTFS"
    mkdir -p "$WORK"
    debootstrap --variant=minbase bookworm "$ROOTFS" "$MIRROR"
fi

# The libraries the official image keeps (found there with ldd of the extension modules).
echo "deb $MIRROR bookworm main" > "$ROOTFS/etc/apt/sources.list"
chroot "$ROOTFS" apt-get update -qq
chroot "$ROOTFS" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    ca-certificates netbase tzdata libbz2-1.0 libexpat1 libffi8 liblzma5 libncursesw6 libnsl2 \
    libreadline8 libsqlite3-0 libssl3 libtirpc3 libuuid1 zlib1g
chroot "$ROOTFS" apt-get clean
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin

# CPython in /usr/local, as the official image has it. The build's RUNPATH names its old prefix, which
# does not exist in the image; /usr/local/lib is on the loader's default path.
rm -rf "$ROOTFS/usr/local/lib/python3.12" "$ROOTFS"/usr/local/lib/libpython3*
mkdir -p "$ROOTFS/usr/local/bin" "$ROOTFS/usr/local/lib"
cp -a "$PYTHON_HOME"/lib/libpython3*.so* "$ROOTFS/usr/local/lib/"
cp -a "$PYTHON_HOME/bin/python3.12" "$ROOTFS/usr/local/bin/"
ln -sf python3.12 "$ROOTFS/usr/local/bin/python3"
ln -sf python3 "$ROOTFS/usr/local/bin/python"
# The standard library only: the source installation's site-packages may hold anything.
tar -C "$PYTHON_HOME/lib" --exclude='python3.12/site-packages/*' -cf - python3.12 | tar -C "$ROOTFS/usr/local/lib" -xf -
find "$ROOTFS/usr/local/lib/python3.12" -depth \
    \( \( -type d -a \( -name test -o -name tests -o -name idle_test -o -name idlelib -o -name tkinter \
    -o -name turtledemo -o -name __pycache__ \) \) \
    -o \( -type f -a \( -name '*.pyc' -o -name '*.pyo' -o -name 'libpython*.a' -o -name '_tkinter*.so' \) \) \) \
    -exec rm -rf '{}' +
chroot "$ROOTFS" ldconfig

# Every extension module must load in the new root.
missing=$(chroot "$ROOTFS" sh -c 'ldd /usr/local/bin/python3.12 /usr/local/lib/python3.12/lib-dynload/*.so' \
    | grep 'not found' || true)
[ -z "$missing" ] || die "libraries missing in the rootfs: $missing"
chroot "$ROOTFS" /usr/local/bin/python3 -c 'import ssl, sqlite3, ctypes, lzma, bz2, zlib, uuid, readline, venv, ensurepip'

container=$(buildah from scratch)
trap 'buildah rm "$container" >/dev/null' EXIT
buildah copy --quiet "$container" "$ROOTFS/" /
# PATH as the official image has it (/usr/local/bin twice: its own ENV in front of Debian's).
buildah config \
    --env PATH=/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 \
    --env PYTHON_VERSION="$version" \
    --cmd python3 \
    --label org.opencontainers.image.description="local stand-in for python:3.12-slim (hack/images/local-base.sh)" \
    "$container"
buildah commit --quiet "$container" "$IMAGE"
echo "local-base.sh: $IMAGE (CPython $version, Debian $(cat "$ROOTFS/etc/debian_version")) committed"
