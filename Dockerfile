# syntax=docker/dockerfile:1
# One image, two roles (docs/deploy.md): `kinsight agent` (DaemonSet, run as root by the
# manifest) and `kinsight server` (StatefulSet, the image's non-root user).
#
#   docker build -t kinsight:0.1.0 .
#
# Stages: the web console (when ui/ has a package.json), the Rust binary with the console
# embedded, and a runtime of glibc + CA certificates and nothing else.

ARG RUST_VERSION=1.95
ARG NODE_VERSION=20

# --- console -----------------------------------------------------------------------------------
FROM node:${NODE_VERSION}-bookworm-slim AS ui
WORKDIR /src/ui
COPY ui/ ./
# An empty dist/ when there is no UI yet, so the next stage's COPY always has a source.
RUN if [ -f package.json ]; then npm ci && npm run build; else mkdir -p dist; fi

# --- binary ------------------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
COPY --from=ui /src/ui/dist ui/dist
# Caches speed up rebuilds; the binary is copied out because the target cache is not in the
# image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin kinsight \
    && cp target/release/kinsight /kinsight

# --- runtime -----------------------------------------------------------------------------------
# distroless/cc: glibc, libgcc, CA certificates, /etc/passwd with `nonroot` (65532); no shell
# and no package manager, so a compromised process has little to work with.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /kinsight /usr/local/bin/kinsight
# The server's user. The agent's DaemonSet sets runAsUser: 0 because it reads the node's
# root-owned files (docs/deploy.md, "Why the agent runs as root").
USER 65532:65532
EXPOSE 8080 9091
ENTRYPOINT ["/usr/local/bin/kinsight"]
