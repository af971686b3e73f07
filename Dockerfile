# streamhost and its plugins, for the compose stack (docker-compose.yml).
# Untested on the development machines (no Docker engine there): see docs/setup.md.
FROM rust:1.95-bookworm AS build
RUN rustup target add wasm32-wasip2
WORKDIR /src
COPY Cargo.toml Cargo.lock clippy.toml rustfmt.toml ./
COPY host host
COPY wit wit
COPY plugins plugins
RUN cargo build --release --locked \
 && (cd plugins && cargo build --release --locked)

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/streamhost /usr/local/bin/streamhost
COPY --from=build /src/plugins/target/wasm32-wasip2/release/quality.wasm /plugins.d/10-quality.wasm
ENV STREAMHOST_PLUGINS__DIR=/plugins.d
ENTRYPOINT ["streamhost"]
CMD ["run"]
