# mcpinit as a tiny image to copy the binary from, for the architecture asked for:
#   COPY --from=mcpinit /mcpinit /mcpinit
#   ENTRYPOINT ["/mcpinit", "--"]
# Build:  docker build -t mcpinit .                                  (the daemon's arch)
#         docker buildx build --platform linux/arm64 -t mcpinit .    (or linux/amd64)
#         add --build-arg MCPINIT_COMMIT=$(git rev-parse --short=12 HEAD) for --version
# The builder runs on the build machine's own platform and cross-compiles for TARGETARCH
# (amd64 or arm64; any other is refused) with scripts/build-static.sh, the script the
# tests run: rust-lld links aarch64, so no emulation is needed to build for arm64.
# Without BuildKit TARGETARCH is unset and the binary is amd64.
FROM --platform=${BUILDPLATFORM:-linux/amd64} rust:1-bookworm AS builder
ARG TARGETARCH
ARG MCPINIT_COMMIT=
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY .cargo ./.cargo
COPY src ./src
COPY benches ./benches
COPY tests/incremental.rs ./tests/incremental.rs
COPY scripts/build-static.sh ./scripts/build-static.sh
RUN MCPINIT_COMMIT="$MCPINIT_COMMIT" scripts/build-static.sh --out /mcpinit "${TARGETARCH:-amd64}"

FROM scratch
COPY --from=builder /mcpinit /mcpinit
ENTRYPOINT ["/mcpinit", "--"]
