# streamhost and the plugin chain it ships (enrich + quality), for the compose stack
# (docker-compose.yml; docs/howto/run-with-docker.md). Needs BuildKit (the
# default of `docker compose`; DOCKER_BUILDKIT=1 COMPOSE_DOCKER_CLI_BUILD=1 for
# docker-compose 1.29) for the cargo registry cache mounts.

# ---- the workspace's manifests over empty sources: all cargo needs to resolve the
# workspace (host and plugins, one Cargo.lock) and build the host's dependencies. A
# source change leaves this tree, and so the dependency layers below, unchanged.
FROM rust:1.95-bookworm AS manifests
WORKDIR /src
COPY Cargo.toml Cargo.lock clippy.toml rustfmt.toml ./
COPY host/Cargo.toml host/
COPY plugins plugins
RUN find plugins -type f ! -name Cargo.toml -delete \
 && for manifest in $(find plugins -name Cargo.toml); do \
      mkdir -p "$(dirname "$manifest")/src" && touch "$(dirname "$manifest")/src/lib.rs"; \
    done \
 && mkdir -p host/src host/benches \
 && echo 'fn main() {}' >host/src/main.rs \
 && for bench in pipeline compile hostile; do echo 'fn main() {}' >host/benches/$bench.rs; done \
 && touch host/src/lib.rs

# ---- the plugins that ship, as WebAssembly components
FROM rust:1.95-bookworm AS plugins
RUN rustup target add wasm32-wasip2
WORKDIR /src
COPY --from=manifests /src ./
COPY wit wit
COPY plugins plugins
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --profile wasm --target wasm32-wasip2 --locked -p enrich -p quality \
 && mkdir /out && cp target/wasm32-wasip2/wasm/enrich.wasm target/wasm32-wasip2/wasm/quality.wasm /out/

# ---- the host (its debug line tables stay out of the image: 183 → 31 MB; the
# symbols stay, for backtraces)
FROM rust:1.95-bookworm AS host
WORKDIR /src
# Dependencies first, in a layer of their own: the manifests with empty sources. A
# source change reuses this layer and does not rebuild wasmtime and librdkafka.
COPY --from=manifests /src ./
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo build --release --locked
# Then the sources (newer than the stubs' build, so cargo rebuilds the crate itself).
COPY wit wit
COPY schemas schemas
COPY host host
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    find host -name '*.rs' -exec touch {} + \
 && cargo build --release --locked \
 && objcopy --strip-debug target/release/streamhost /usr/local/bin/streamhost

# ---- the runtime image
FROM debian:bookworm-slim
# The downloaded packages too: not every base image cleans apt's cache by itself.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*
COPY --from=host /usr/local/bin/streamhost /usr/local/bin/streamhost
# The documented chain (docs/howto/deploy-a-rule.md), copied into the plugin directory by the entry
# point when that directory holds no plugin (e.g. an empty bind mount).
COPY --from=plugins /out/enrich.wasm /usr/share/streamhost/plugins/10-enrich.wasm
COPY --from=plugins /out/quality.wasm /usr/share/streamhost/plugins/20-quality.wasm
COPY scripts/docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
# Not root: the user `streamhost`, uid and gid 10001 (fixed, for volume ownership and
# Kubernetes' runAsUser/runAsNonRoot; docker-compose.yml runs it as the host user who
# owns ./plugins.d instead). What it writes: the plugin directory (the image's chain,
# copied in by the entry point when the directory is empty) and the compiled-plugin
# cache, in /var/cache/streamhost: root's and sticky like /tmp, so that any uid can keep
# its own private cache there (plugins.compiled_dir refuses a directory others can
# write to).
RUN groupadd --system --gid 10001 streamhost \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/streamhost --create-home \
      --shell /usr/sbin/nologin streamhost \
 && install -d -m 1777 /var/cache/streamhost \
 && install -d -o 10001 -g 10001 -m 0755 /plugins.d
ENV STREAMHOST_PLUGINS__DIR=/plugins.d \
    STREAMHOST_PLUGINS__COMPILED_DIR=/var/cache/streamhost/compiled
USER 10001:10001
HEALTHCHECK --interval=5s --timeout=5s --retries=24 CMD curl -fsS http://localhost:9898/health || exit 1
ENTRYPOINT ["/bin/sh", "/usr/local/bin/docker-entrypoint.sh"]
CMD ["run"]
