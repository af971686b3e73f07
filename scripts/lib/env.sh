# Shared settings of the scripts: versions, cache and state locations, ports.
# Sourced, not run. Everything can be overridden from the environment.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# Caches live outside the clone and are keyed by version, so a fresh clone reuses them.
CACHE=${STREAMHOST_CACHE:-$HOME/.cache/streamhost}
# Runtime state (broker data, ClickHouse data, logs, pid files) of this checkout.
STATE=${STREAMHOST_STATE_DIR:-$ROOT/.state}
# The compose test's (scripts/compose-test): apart, because its images build while the
# integration tests run, and those reset $STATE.
COMPOSE_STATE=${STREAMHOST_COMPOSE_STATE_DIR:-$ROOT/.state-compose}

TANSU_VERSION=0.6.0
TANSU_FEATURES=dynostore,libsql
TANSU_BIN=$CACHE/tansu-$TANSU_VERSION/bin/tansu

# The Python kit shared by tests, benchmarks and scripts (tools/streamhost_kit), importable
# as `streamhost_kit` by every Python these scripts start (pytest also has it from pytest.ini).
case ":${PYTHONPATH:-}:" in *":$ROOT/tools:"*) ;; *) export PYTHONPATH=$ROOT/tools${PYTHONPATH:+:$PYTHONPATH} ;; esac

PY_REQ=$ROOT/tests/requirements.txt
PY_ENV=$CACHE/venv-$(sha256sum "$PY_REQ" | cut -c1-12)
PYTHON=$PY_ENV/bin/python
LIBRDKAFKA_DIR=$CACHE/librdkafka-$(sha256sum "$PY_REQ" | cut -c1-12)

KAFKA_BROKERS=${STREAMHOST_KAFKA_BROKERS:-127.0.0.1:9092}
KAFKA_PORT=${KAFKA_BROKERS##*:}
PARTITIONS=${STREAMHOST_PARTITIONS:-3}
TOPICS="my_events enriched_events country_event_averages dlq"
CH_HTTP_PORT=${STREAMHOST_CH_HTTP_PORT:-8123}
CH_TCP_PORT=${STREAMHOST_CH_TCP_PORT:-9000}

# Cargo builds (the host, and the plugins of the same workspace) share one target dir
# per toolchain, outside the clone.
RUST_VERSION=$(rustc --version 2>/dev/null | cut -d' ' -f2)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CACHE/target-rust-${RUST_VERSION:-unknown}}
HOST_BIN=$CARGO_TARGET_DIR/release/streamhost
PLUGIN_DIR=${STREAMHOST_PLUGINS__DIR:-$STATE/plugins.d}

log() { printf '\033[1m[%s]\033[0m %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '\033[31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# The plugins' target (wasm32-wasip2), added to the toolchain once. Anything that
# compiles or lints a plugin calls this first: a fresh machine has only the host target.
wasm_target() {
  rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 && return
  log "adding the wasm32-wasip2 target"
  rustup target add wasm32-wasip2 >&2
}

# wait_for DESCRIPTION SECONDS COMMAND...: retry COMMAND until it succeeds.
wait_for() {
  local what=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.3
  done
  log "$what ready"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Stop a process recorded in a pid file, politely first.
stop_pidfile() {
  local pidfile=$1 name=$2 pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    log "$name stopped (pid $pid)"
  else
    log "$name was not running (pid $pid had exited)"
  fi
  rm -f "$pidfile"
}

# Superset (the dashboard): its own venv, keyed by its pins; metadata under $STATE.
SUPERSET_REQ=$ROOT/superset/requirements.txt
SUPERSET_ENV=$CACHE/superset-venv-$(cat "$SUPERSET_REQ" "$ROOT/superset/constraints.txt" | sha256sum | cut -c1-12)
SUPERSET_PORT=${STREAMHOST_SUPERSET_PORT:-8088}
SUPERSET_HOME=$STATE/superset
SUPERSET_USER=${STREAMHOST_SUPERSET_USER:-admin}
SUPERSET_PASSWORD=${STREAMHOST_SUPERSET_PASSWORD:-admin}

# Install Debian packages (root): wait for another apt/dpkg to finish instead of failing
# on its lock; refresh the package lists only if the first attempt needs it.
apt_install() {
  [ "$(id -u)" = 0 ] || die "installing $* needs root (apt-get)"
  local apt=(apt-get -o DPkg::Lock::Timeout=600 -y -qq)
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" install "$@" >/dev/null 2>&1 \
    || { "${apt[@]}" update >&2 && DEBIAN_FRONTEND=noninteractive "${apt[@]}" install "$@" >&2; }
}
