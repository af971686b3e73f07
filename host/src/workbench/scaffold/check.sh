#!/usr/bin/env bash
# What a CI runs for this plugin: its tests, the component, the host's checks with the
# manifest, and the expected outcomes of cases.jsonl. STREAMHOST: the streamhost binary.
set -euo pipefail
cd "$(dirname "$0")"
streamhost=${STREAMHOST:-streamhost}
cargo test --quiet
cargo build --release --target wasm32-wasip2 --quiet
wasm=${CARGO_TARGET_DIR:-target}/wasm32-wasip2/release/{{crate}}.wasm
"$streamhost" plugin check "$wasm" --manifest {{crate}}.toml
"$streamhost" plugin test "$wasm" --manifest {{crate}}.toml --expect cases.jsonl
