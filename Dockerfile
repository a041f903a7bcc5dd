# syntax=docker/dockerfile:1
# Build: docker build -t cognito-sidecar .
# The same steps run natively in .ci/run (no container engine on our build machines).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked --bin cognito-sidecar

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/cognito-sidecar /usr/local/bin/cognito-sidecar
USER nonroot:nonroot
EXPOSE 8080 9901
ENTRYPOINT ["/usr/local/bin/cognito-sidecar"]
CMD ["--config", "/etc/cognito-sidecar/config.toml"]
