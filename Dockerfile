# syntax=docker/dockerfile:1.7
#
# cognito-sidecar container image.
#
#   docker build -t cognito-sidecar:0.1.0 .
#   docker run --rm -p 8080:8080 -p 9901:9901 --read-only \
#     -v "$PWD/config.toml:/etc/cognito-sidecar/config.toml:ro" cognito-sidecar:0.1.0
#
# Two stages: a full Rust toolchain builds the release binary exactly as CI and the
# README do (`cargo build --release --locked --bin cognito-sidecar`); the runtime stage
# is distroless "cc" (glibc, libgcc, CA certificates, /etc/passwd with `nonroot`) and
# nothing else: no shell, no package manager. The binary writes no files, so the
# container runs with a read-only root filesystem.
#
# Base images are pinned by tag AND digest; bump both together (the build stage's
# Debian release must match the runtime's: bookworm = debian12, same glibc).
#
# No HEALTHCHECK on purpose: there is no shell or curl in the image to run one, and the
# orchestrators we target probe the admin port themselves (Kubernetes readiness and
# liveness probes on :9901/readyz and /healthz; see deploy/kubernetes/). A Docker
# HEALTHCHECK would also be ignored by Kubernetes.

ARG RUST_IMAGE=rust:1.95.0-bookworm@sha256:6258907abe69656e41cd992e0b705cdcfabcbbe3db374f92ed2d47121282d4a1
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f

FROM ${RUST_IMAGE} AS build
# The commit shown by the cognito_sidecar_build_info metric (the context has no .git):
#   docker build --build-arg SIDECAR_BUILD_COMMIT="$(git rev-parse --short=12 HEAD)" .
ARG SIDECAR_BUILD_COMMIT=unknown
WORKDIR /src
# Only what Cargo reads: .dockerignore is an allow-list (manifest, lock file, build.rs,
# src/, and the bench sources the manifest declares), so a change to docs, tests or
# deploy/ does not invalidate this layer.
COPY . ./
# The registry and target caches persist between builds (BuildKit); the binary is
# copied out of the cache mount so the next stage can see it.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin cognito-sidecar \
    && install -D -m 0755 target/release/cognito-sidecar /out/cognito-sidecar

FROM ${RUNTIME_IMAGE}
LABEL org.opencontainers.image.title="cognito-sidecar" \
      org.opencontainers.image.description="Authenticating reverse proxy that admits only requests carrying a valid Amazon Cognito user-pool token" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/cognito-sidecar /usr/local/bin/cognito-sidecar
# Numeric uid:gid (distroless `nonroot`), so Kubernetes can verify runAsNonRoot.
USER 65532:65532
# 8080: proxy (the only port a Service should target). 9901: admin (/healthz, /readyz,
# /metrics); set admin_listen = "0.0.0.0:9901" for probes and scrapes from outside the
# container, and keep it out of any Service or published port facing clients.
EXPOSE 8080 9901
# SIGTERM: /readyz fails at once; after [shutdown] pre_stop_delay_seconds the listener
# closes and in-flight requests get drain_timeout_seconds (default 30), then exit 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/cognito-sidecar"]
CMD ["--config", "/etc/cognito-sidecar/config.toml"]
