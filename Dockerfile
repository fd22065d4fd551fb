# archway's own image: linux/amd64 and linux/arm64, built without emulation.
#
# Every RUN is in a `FROM --platform=$BUILDPLATFORM` stage and the final stage has none, so
# `archway plan` says `cross` for every foreign platform: the image builds on any runner, with
# no QEMU. The final stage holds only files:
#
#   /usr/local/bin/archway                              static (musl), from `cargo build`
#   /usr/bin/docker                                     Debian's docker-cli
#   /usr/libexec/docker/cli-plugins/docker-buildx       Debian's docker-buildx
#   /usr/bin/qemu-{aarch64,arm,riscv64,s390x,ppc64le,x86_64}-static   Debian's qemu-user-static
#   /opt/archway/glibc/{ld-linux-*.so.*,libc.so.6}      the glibc that docker and buildx need
#   /etc/ssl/certs/ca-certificates.crt                  CA bundle
#
# Debian builds docker and docker-buildx as dynamic glibc binaries. Their interpreter and
# run path are set (patchelf) to the private glibc under /opt/archway/glibc, so they run on any
# RUNTIME_IMAGE — busybox, Debian, Alpine, even scratch — and never touch the base's own libc.
#
# Where the binaries come from is chosen with two build args (the final stage is the same):
#
#   ARCHWAY_SOURCE=compile  cargo build for the target's musl triple inside RUST_IMAGE (default)
#   ARCHWAY_SOURCE=dist     take dist/$TARGETARCH/archway/ from the build context
#   TOOLS_SOURCE=debian     download and unpack the Debian packages inside DEBIAN_IMAGE (default)
#   TOOLS_SOURCE=dist       take dist/$TARGETARCH/tools/ from the build context
#
# Both `compile` and `debian` run `scripts/build-image compile|tools`, which is also what
# fills dist/ on the host: `scripts/build-image` builds this image with archway itself, from
# dist/, on a machine where no base image can be pulled (see "Using archway in CI" in README.md).
#
# In real CI (base images pullable):
#   archway build . --platform linux/amd64,linux/arm64 -t ghcr.io/archway-build/archway:0.1.0 --push
# In the lab (nothing pullable; dist/ made by scripts/build-image):
#   archway build . --platform linux/amd64,linux/arm64 -t 127.0.0.1:5000/archway/archway:dev --push \
#     --build-arg ARCHWAY_SOURCE=dist --build-arg TOOLS_SOURCE=dist \
#     --build-arg RUNTIME_IMAGE=127.0.0.1:5000/lab/busybox:latest

ARG RUST_IMAGE=rust:1-bookworm
ARG DEBIAN_IMAGE=debian:bookworm-slim
# Anything with a shell (GitLab jobs run their script in it); glibc is not needed.
ARG RUNTIME_IMAGE=debian:bookworm-slim
ARG ARCHWAY_SOURCE=compile
ARG TOOLS_SOURCE=debian

# ---------------------------------------------------------------- archway, compiled
FROM --platform=$BUILDPLATFORM ${RUST_IMAGE} AS archway-compile
ARG TARGETARCH
WORKDIR /src
COPY scripts/build-image scripts/build-image
COPY Cargo.toml Cargo.lock ./
COPY src/ src/
RUN --mount=type=cache,id=archway-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=archway-target,target=/src/target \
    scripts/build-image compile --arch "$TARGETARCH" --out /out

# ---------------------------------------------------------------- archway, prebuilt
FROM scratch AS archway-dist
ARG TARGETARCH
COPY dist/${TARGETARCH}/archway/ /out/

# ---------------------------------------------------------------- docker, buildx, qemu, glibc
FROM --platform=$BUILDPLATFORM ${DEBIAN_IMAGE} AS tools-debian
ARG TARGETARCH
COPY scripts/build-image /usr/local/bin/archway-build-image
RUN --mount=type=cache,id=archway-tools-cache,target=/var/cache/archway-image \
    ARCHWAY_IMAGE_WORK=/var/cache/archway-image \
    archway-build-image tools --arch "$TARGETARCH" --out /out

# ---------------------------------------------------------------- the same, prebuilt
FROM scratch AS tools-dist
ARG TARGETARCH
COPY dist/${TARGETARCH}/tools/ /out/

# ---------------------------------------------------------------- pick the sources
FROM archway-${ARCHWAY_SOURCE} AS archway
FROM tools-${TOOLS_SOURCE} AS tools

# ---------------------------------------------------------------- the image: files only, no RUN
FROM ${RUNTIME_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=https://github.com/archway-build/archway
COPY --from=tools /out/ /
COPY --from=archway /out/ /
ENV DOCKER_CLI_HINTS=false
LABEL org.opencontainers.image.title="archway" \
      org.opencontainers.image.description="Build a Dockerfile into a multi-platform image in one CI step" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.url="${SOURCE}" \
      org.opencontainers.image.documentation="${SOURCE}#readme" \
      org.opencontainers.image.vendor="archway-build" \
      org.opencontainers.image.licenses="Apache-2.0"
ENTRYPOINT ["/usr/local/bin/archway"]
# No arguments: `archway build`, reading the CI's inputs (a Bitbucket pipe runs the image so).
CMD ["build"]
