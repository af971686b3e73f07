#!/bin/bash
# TEST DOUBLE entry point: maps the official apache/kafka image's KAFKA_* settings onto
# Tansu, which has one listener and one advertised address per process.
#   - KAFKA_LISTENERS / KAFKA_ADVERTISED_LISTENERS: the first advertised listener (the
#     inter-container one) is the Tansu broker; every further advertised listener is
#     listener-proxy.py on that listener's port: it forwards to the broker and rewrites
#     the broker's address in Metadata and FindCoordinator answers to the advertised one.
#     (Not used: `tansu proxy` closed every connection; a second Tansu broker on the same
#     sqlite storage failed produce requests with "database is locked".)
#     Listeners named in KAFKA_CONTROLLER_LISTENER_NAMES are skipped (Tansu has no
#     controller quorum).
#   - KAFKA_LOG_DIRS: the directory of Tansu's sqlite storage (topics, records and
#     committed offsets survive a restart).
#   - Ignored: node id, process roles, quorum voters, replication factors, min ISR,
#     KAFKA_AUTO_CREATE_TOPICS_ENABLE, the security protocol map (PLAINTEXT only).
set -euo pipefail
: "${KAFKA_LISTENERS:=PLAINTEXT://:9092}"
: "${KAFKA_ADVERTISED_LISTENERS:=PLAINTEXT://localhost:9092}"
: "${KAFKA_LOG_DIRS:=/var/lib/kafka/data}"
controllers=",${KAFKA_CONTROLLER_LISTENER_NAMES:-},"

port_of_listener() {  # NAME -> the port KAFKA_LISTENERS binds for it
  local l
  IFS=, read -ra ls <<<"$KAFKA_LISTENERS"
  for l in "${ls[@]}"; do
    [ "${l%%://*}" = "$1" ] && { echo "${l##*:}"; return 0; }
  done
  echo "no listener named $1 in KAFKA_LISTENERS=$KAFKA_LISTENERS" >&2; return 1
}

mkdir -p "$KAFKA_LOG_DIRS"
cd "$KAFKA_LOG_DIRS"
broker_port=
pids=()
IFS=, read -ra advertised <<<"$KAFKA_ADVERTISED_LISTENERS"
for a in "${advertised[@]}"; do
  name=${a%%://*} addr=${a#*://}
  case "$controllers" in *",$name,"*) continue ;; esac
  port=$(port_of_listener "$name")
  if [ -z "$broker_port" ]; then
    broker_port=$port broker_addr=$addr
    echo "stand-in: $name: tansu broker on :$port, advertised as $addr" >&2
    tansu broker --listener-url "tcp://0.0.0.0:$port" --advertised-listener-url "tcp://$addr" \
      --storage-engine "sqlite://tansu.db" &
  else
    for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$broker_port") 2>/dev/null && break; sleep 0.1; done
    python3 /usr/local/bin/listener-proxy.py "$port" "127.0.0.1:$broker_port" "$broker_addr" "$addr" &
  fi
  pids+=($!)
done
[ -n "$broker_port" ] || { echo "stand-in: no broker listener in KAFKA_ADVERTISED_LISTENERS" >&2; exit 1; }
trap 'kill -TERM "${pids[@]}" 2>/dev/null; wait' TERM INT
# Any process ending ends the container (compose restarts or reports it).
wait -n
status=$?
kill -TERM "${pids[@]}" 2>/dev/null || true
wait || true
exit "$status"
