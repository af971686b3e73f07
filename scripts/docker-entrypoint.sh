#!/bin/sh
# Entry point of the streamhost image (Dockerfile). If the plugin directory holds no
# plugin (a fresh bind mount or volume), copy in the chain the image ships, with the safe
# deploy of docs/howto/deploy-a-rule.md (hidden temporary name, then a rename). Then run streamhost.
set -eu
dir=${STREAMHOST_PLUGINS__DIR:-/plugins.d}
mkdir -p "$dir"
if ! ls "$dir"/*.wasm >/dev/null 2>&1; then
  for p in /usr/share/streamhost/plugins/*.wasm; do
    name=$(basename "$p")
    cp "$p" "$dir/.$name.tmp" && mv "$dir/.$name.tmp" "$dir/$name"
    echo "docker-entrypoint: deployed $name into $dir" >&2
  done
fi
exec streamhost "$@"
