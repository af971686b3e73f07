#!/bin/sh
# Entry point of the streamhost image (Dockerfile). If the plugin directory holds no
# plugin (a fresh bind mount or volume), copy in the chain the image ships, with the safe
# deploy of docs/howto/deploy-a-rule.md (hidden temporary name, then a rename; the name
# carries the container's host name, so scaled instances starting together do not
# collide). A directory this user cannot write to is left alone: if it holds no plugin,
# stop with what to do rather than serve an empty chain. Then run streamhost.
set -eu
dir=${STREAMHOST_PLUGINS__DIR:-/plugins.d}
mkdir -p "$dir" 2>/dev/null || true
if ! ls "$dir"/*.wasm >/dev/null 2>&1; then
  if [ ! -w "$dir" ]; then
    cat >&2 <<EOF
docker-entrypoint: the plugin directory $dir holds no plugin, and this container's user
(uid $(id -u), gid $(id -g)) cannot write to it to deploy the image's chain. With
docker-compose.yml: the container runs as STREAMHOST_UID:STREAMHOST_GID (default
1000:1000), which must own ./plugins.d; run
  STREAMHOST_UID=\$(id -u) STREAMHOST_GID=\$(id -g) docker compose up -d
as the user who owns ./plugins.d (docs/howto/run-with-docker.md).
EOF
    exit 1
  fi
  for p in /usr/share/streamhost/plugins/*.wasm; do
    name=$(basename "$p")
    tmp="$dir/.$name.${HOSTNAME:-$$}.tmp"
    cp "$p" "$tmp" && mv "$tmp" "$dir/$name"
    echo "docker-entrypoint: deployed $name into $dir" >&2
  done
fi
exec streamhost "$@"
