#!/bin/bash
# TEST DOUBLE for Kafka's kafka-broker-api-versions.sh (the compose healthcheck): asks the
# broker for its topics over the Kafka API (`tansu topic list`); exit 0 if it answers.
set -euo pipefail
bootstrap=
while [ $# -gt 0 ]; do
  case "$1" in --bootstrap-server) bootstrap=$2; shift 2 ;; *) shift ;; esac
done
exec tansu topic list --broker "tcp://${bootstrap:?--bootstrap-server HOST:PORT}"
