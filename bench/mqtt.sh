#!/bin/sh
# `make bench` entry (scripts/bench.sh passes the build dir): our broker vs mosquitto.
# Default run: 3 repetitions of every scenario, about 10 minutes. MQTT_BENCH_ARGS adds flags,
# e.g. MQTT_BENCH_ARGS=--quick for a one-minute smoke run.
set -eu
build=${1:-build/release}
exec sh "$(dirname "$0")/mqtt/compare.sh" --build "$build" ${MQTT_BENCH_ARGS:-}
