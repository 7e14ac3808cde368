# syntax=docker/dockerfile:1
#
# hookbridge container image.
#
#   docker build -t hookbridge:dev --build-arg VERSION=$(git describe --always) \
#                --build-arg REVISION=$(git rev-parse HEAD) .
#
# Stages: chef (Rust toolchain + C toolchain for librdkafka + cargo-chef) -> planner (dependency
# recipe from the manifests) -> builder (dependencies cooked in their own cached layer, then the
# release binary) -> binary (the builder's, or with BINARY_STAGE=prebuilt one built on the host)
# -> runtime (distroless: glibc, libssl, CA certificates; no shell, no package manager), running
# as the fixed non-root UID/GID 65532.
# Builder and runtime must share a Debian release (glibc/libssl ABI): trixie <-> debian13.
#
# Without an image registry (only Debian and crates.io reachable), scripts/images.sh builds this
# file's runtime stage on a local base with a binary built on the host (see stage "prebuilt"):
#   docker build -f Dockerfile --target runtime --build-arg BINARY_STAGE=prebuilt \
#     --build-arg RUNTIME_IMAGE=hookbridge-local/runtime-base:trixie <folder with hookbridge + Cargo.toml>

ARG RUST_VERSION=1.95
ARG DEBIAN_CODENAME=trixie
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian13:nonroot
# builder: compile in the image (the default); prebuilt: take ./hookbridge from the build context
ARG BINARY_STAGE=builder

FROM rust:${RUST_VERSION}-slim-${DEBIAN_CODENAME} AS chef
ARG CARGO_CHEF_VERSION=0.1.73
# librdkafka is compiled from source by rdkafka-sys: C/C++ toolchain, make, cmake, pkg-config,
# perl (OpenSSL/librdkafka configure scripts) and OpenSSL headers (libssl is in the runtime
# image). zlib is compiled in statically (LIBZ_SYS_STATIC), so the binary does not rely on the
# base carrying libz: distroless/cc-debian12 has none; debian13 has it only because trixie's
# OpenSSL needs it (scripts/images.sh's runtime-base likewise).
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config perl libssl-dev ca-certificates \
 && rm -rf /var/lib/apt/lists/*
ENV LIBZ_SYS_STATIC=1
RUN cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}"
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
# Dependencies only (the slow part: librdkafka, tokio, axum, ...): this layer is reused as long
# as Cargo.toml / Cargo.lock do not change.
RUN cargo chef cook --release --locked --recipe-path recipe.json
# The gateway itself; schemas/*.avsc are embedded at compile time. The context has no .git
# (.dockerignore): the commit for hookbridge_build_info comes from the REVISION build argument.
COPY . .
ARG REVISION=unknown
RUN GIT_SHA="${REVISION}" cargo build --release --locked --bin hookbridge \
 && install -D -m 0755 target/release/hookbridge /out/hookbridge

# Stage "prebuilt": a release binary built on the host (`cargo build --locked --release`), for
# machines where no Rust builder image can be pulled. The build context is a folder holding only
# that binary, named hookbridge, and Cargo.toml (scripts/images.sh makes it). The host's glibc
# must not be newer than the runtime image's (Debian 12's 2.36 < trixie's 2.41); the runtime
# stage's `hookbridge --version` below fails the build otherwise. Cargo.toml is named so that
# builders that build every stage (the classic one) find a file in the repository's context too.
FROM scratch AS prebuilt
COPY Cargo.toml hookbridge* /out/

FROM ${BINARY_STAGE} AS binary

FROM ${RUNTIME_IMAGE} AS runtime
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="hookbridge" \
      org.opencontainers.image.description="Verifies Sendbird webhooks by HMAC and publishes them to Kafka as Avro (Confluent wire format)" \
      org.opencontainers.image.source="https://github.com/hookbridge/hookbridge" \
      org.opencontainers.image.url="https://github.com/hookbridge/hookbridge" \
      org.opencontainers.image.documentation="https://github.com/hookbridge/hookbridge/blob/main/docs/deploy.md" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
COPY --from=binary /out/hookbridge /usr/local/bin/hookbridge
# Numeric, so Kubernetes' runAsNonRoot can verify it without an /etc/passwd lookup.
USER 65532:65532
# Fail the build, not the first deployment, if a shared library is missing from the runtime
# image (exec form: no shell needed).
RUN ["/usr/local/bin/hookbridge", "--version"]
# 8080: webhooks (HOOKBRIDGE_HTTP_ADDR); 9090: /livez /readyz /metrics (HOOKBRIDGE_ADMIN_ADDR)
EXPOSE 8080 9090
# SIGTERM: readiness -> 503, stop accepting, finish in-flight requests, flush Kafka, exit 0.
STOPSIGNAL SIGTERM
# No curl in the image: the binary probes its own /readyz on 127.0.0.1:9090.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["/usr/local/bin/hookbridge", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/hookbridge"]
CMD ["serve"]
