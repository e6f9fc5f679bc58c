# syntax=docker/dockerfile:1
#
# One image per controller, all from this file:
#
#   docker build --build-arg CONTROLLER=ironcore --build-arg VERSION=0.1.0 -t argora-ironcore .
#   docker build --target metal3 -t argora-metal3 .      # the same, by stage name
#   make images                                           # all five, with buildah or docker
#
# CONTROLLER is ironcore, metal3, update, ippool or ipaddress; the stage of that name is the image.
# Its ENTRYPOINT is the controller's console script, so arguments (the chart's extraArgs) go straight
# to it.
#
# Dependencies come from requirements.lock only (exact versions, sha256 of every file; regenerate with
# hack/lock.sh), installed with --no-deps so nothing unpinned slips in. tests/integration/
# test_packaging.py runs these same pip commands in a fresh virtualenv and checks this file's stages.
#
# The image needs no writes at runtime, so it runs with a read-only root filesystem: the bytecode is
# compiled at build time, the standard library's too (the official image ships it without .pyc files, and
# a read-only root would make every start compile it again in memory: 0.5 s to 2 s of CPU), and
# PYTHONDONTWRITEBYTECODE stops Python from trying to write any. (Only a kubeconfig with embedded
# certificates, as outside a cluster, makes the Kubernetes client write temporary files: give such a
# container a writable /tmp.)
#
# BASE is the official python:3.12-slim (Debian bookworm) release 3.12.11, pinned by the digest of its
# multi-platform index, so that a rebuild gets the same base until the digest is bumped on purpose. Check
# or bump it with `docker buildx imagetools inspect python:3.12.11-slim-bookworm` (or `skopeo inspect`).
# `make images BASE=python:3.12-slim` builds from whatever the tag is now; on a machine without registry
# access, hack/images/local-base.sh makes a local stand-in of that name.

ARG BASE=python:3.12.11-slim-bookworm@sha256:519591d6871b7bc437060736b9f7456b8731f1499a57e22e6c285135ae657bf7
ARG CONTROLLER=ironcore

FROM ${BASE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/argora
COPY requirements.lock /build/requirements.lock
RUN /opt/argora/bin/pip install --require-hashes --no-deps -r /build/requirements.lock
COPY pyproject.toml README.md /build/src/
COPY argora_common /build/src/argora_common
COPY ironcore_controller /build/src/ironcore_controller
COPY metal3_controller /build/src/metal3_controller
COPY update_controller /build/src/update_controller
COPY ippool_controller /build/src/ippool_controller
COPY ipaddress_controller /build/src/ipaddress_controller
RUN /opt/argora/bin/pip install --no-deps /build/src

FROM ${BASE} AS runtime
# The standard library's bytecode, as root before USER (see the top); /usr/local/lib/python3.12 is
# where the official image has it. And an /etc/passwd entry for USER's uid: kopf names a standalone
# operator (no POD_ID) after getpass.getuser(), which fails with a KeyError traceback for a uid the
# image does not know. Before the project's layers, so both are cached across their changes.
RUN python -m compileall -q -j 0 /usr/local/lib/python3.12 \
    && groupadd --system --gid 65532 nonroot \
    && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin nonroot
ARG VERSION=0.1.0
ARG SOURCE=https://github.com/argora/argora
LABEL org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.description="Kubernetes operators that make NetBox the source of truth for bare-metal management"
ENV PATH=/opt/argora/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Same path as in the build stage: the virtualenv's scripts name their interpreter by absolute path.
COPY --from=build /opt/argora /opt/argora
# The distroless "nonroot" uid/gid (the chart's runAsUser), named in /etc/passwd above.
USER 65532:65532
WORKDIR /
# ARGORA_HEALTH_PORT, ARGORA_WEBHOOK_PORT (served only with a webhook secret) and ARGORA_METRICS_PORT
# defaults.
EXPOSE 8080 8081 9090

FROM runtime AS ironcore
LABEL org.opencontainers.image.title="argora-ironcore"
ENTRYPOINT ["/opt/argora/bin/argora-ironcore"]

FROM runtime AS metal3
LABEL org.opencontainers.image.title="argora-metal3"
ENTRYPOINT ["/opt/argora/bin/argora-metal3"]

FROM runtime AS update
LABEL org.opencontainers.image.title="argora-update"
ENTRYPOINT ["/opt/argora/bin/argora-update"]

FROM runtime AS ippool
LABEL org.opencontainers.image.title="argora-ippool"
ENTRYPOINT ["/opt/argora/bin/argora-ippool"]

FROM runtime AS ipaddress
LABEL org.opencontainers.image.title="argora-ipaddress"
ENTRYPOINT ["/opt/argora/bin/argora-ipaddress"]

# The default target: the stage named by CONTROLLER.
FROM ${CONTROLLER}
