# syntax=docker/dockerfile:1
#
# One image with both binaries: /usr/local/bin/mpic-coordinator and
# /usr/local/bin/mpic-worker. compose.yaml and k8s/ choose the binary with `command`.
# No key, certificate, password or configuration file is copied in; they are mounted at
# run time. The perspective catalogue is data, not a secret, so it is included as the
# default `perspective_catalogue` (/etc/mpic/available_perspectives.yaml).

# The toolchain the project is built and tested with; the workspace needs Rust 1.89 or
# later (edition 2024).
ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS builder
WORKDIR /src
COPY . .
# The cache mounts keep the crates.io downloads and compiled dependencies between builds;
# the binaries are copied out because the target directory is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p mpic-coordinator -p mpic-worker \
    && install -D -m 0755 target/release/mpic-coordinator /out/mpic-coordinator \
    && install -D -m 0755 target/release/mpic-worker /out/mpic-worker

FROM ${RUNTIME_IMAGE}
# ca-certificates: the worker verifies the HTTPS certificates of challenge servers
# against the system roots (verify_ssl).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 mpic \
    && useradd --system --uid 10001 --gid mpic --no-create-home --shell /usr/sbin/nologin mpic
COPY --from=builder /out/mpic-coordinator /out/mpic-worker /usr/local/bin/
COPY available_perspectives.yaml /etc/mpic/available_perspectives.yaml
USER 10001:10001
# The coordinator's REST API (listen_address) and the worker's HTTP endpoints (http_listen)
# as compose.yaml and k8s/ configure them.
EXPOSE 8080 8081
CMD ["/usr/local/bin/mpic-coordinator"]
