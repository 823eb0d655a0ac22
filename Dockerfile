# mcpinit as a tiny image to copy the binary from:
#   COPY --from=mcpinit /mcpinit /mcpinit
#   ENTRYPOINT ["/mcpinit", "--"]
# Build: docker build -t mcpinit .
FROM rust:1-bookworm AS builder
RUN rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY .cargo ./.cargo
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --target x86_64-unknown-linux-musl \
 && cp target/x86_64-unknown-linux-musl/release/mcpinit /mcpinit

FROM scratch
COPY --from=builder /mcpinit /mcpinit
ENTRYPOINT ["/mcpinit", "--"]
