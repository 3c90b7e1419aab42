#!/usr/bin/env bash
# API latency with the REST API on its own loops or on the nodes' loops, under the same fleet.
#
# Reuses a bench/fleet.sh work folder (its controller data and the simulator's enrolled
# identities, so nobody enrols): starts `ganglion sim nodes` once, then restarts the
# controller on the same ports with --cloud.api.threads set to each of MODES in turn (0 = the
# API on the nodes' MQTT loops, as before; N = its own N threads). Per mode: time until every
# node is connected again, then 20 s later p50 / p99 of 100 sequential GET
# /v1/nodes?limit=100, 100 GET /v1/nodes/{id} (random node) and 10 unpaged GET /v1/nodes,
# and the 1-minute load average. Alternating the modes spreads the machine's noise over both.
#
# Usage: bench/fleet_api_ab.sh BIN FLEET_WORK COUNT API_PORT MQTT_PORT ["0 2 0 2"]
#   FLEET_WORK, API_PORT and MQTT_PORT are the ones the fleet.sh run printed (the nodes'
#   cached identities name that MQTT port); COUNT at most the nodes enrolled there.
set -uo pipefail
[[ $# -ge 5 ]] || { sed -n 2,14p "$0" >&2; exit 2; }
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=$1; WORK=$2; N=$3; API_PORT=$4; MQTT_PORT=$5; MODES=${6:-"0 2 0 2"}
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
OUT=$(mktemp -d /tmp/ganglion-fleet-ab-XXXXXX)
CA=$WORK/cloud/pki/ca.pem
API=https://127.0.0.1:$API_PORT
ADMIN=$(grep -o 'admin API token[^:]*: [^ ]*' "$WORK/cloud.out" | head -1 | awk '{print $NF}')
CLOUD_PID=""
SIM_PID=""
cleanup() {
  [[ -n $SIM_PID ]] && kill "$SIM_PID" 2>/dev/null && wait "$SIM_PID" 2>/dev/null
  [[ -n $CLOUD_PID ]] && kill "$CLOUD_PID" 2>/dev/null && wait "$CLOUD_PID" 2>/dev/null
  true
}
trap cleanup EXIT

start_cloud() {
  rm -f "$WORK/cloud/endpoints.json"
  "$BIN" cloud --cloud.data_dir "$WORK/cloud" --cloud.api.listen "127.0.0.1:$API_PORT" \
    --cloud.mqtt.listen "tls://127.0.0.1:$MQTT_PORT" --cloud.heartbeat.interval 10s \
    --cloud.api.threads "$1" --log.level warn >>"$OUT/cloud.out" 2>&1 &
  CLOUD_PID=$!
  for _ in $(seq 600); do
    [[ -f $WORK/cloud/endpoints.json ]] && return 0
    sleep 0.1
  done
  echo "controller did not start" >&2; exit 1
}

latency() {  # path count -> "p50 / p99" in ms
  python3 "$HERE/api_latency.py" "$API" "$ADMIN" "$CA" "$2" "$1" | sed 's| | / |'
}

connected() { tail -n +"$(( $2 + 1 ))" "$1" | grep -o 'connected [0-9]*' | tail -1 | awk '{print $2+0}'; }

echo "| cloud.api.threads | all connected after | GET /v1/nodes?limit=100 p50 / p99 | GET /v1/nodes/{id} p50 / p99 | GET /v1/nodes (all) p50 / p99 | load avg (1 min) |" | tee "$OUT/results.md"
echo "|---:|---:|---:|---:|---:|---:|" | tee -a "$OUT/results.md"
for M in $MODES; do
  if [[ -n $CLOUD_PID ]]; then kill -TERM "$CLOUD_PID"; wait "$CLOUD_PID"; fi
  start_cloud "$M"
  : >>"$OUT/sim.out"
  MARK=$(wc -l <"$OUT/sim.out")
  if [[ -z $SIM_PID ]]; then
    "$BIN" sim nodes --count "$N" --cloud "$API" --token unused --ca "$CA" --heartbeat 10s \
      --batch-interval 5s --data "$WORK/sim" --prefix fleet --status-interval 2s --io-threads 1 \
      --enrol-concurrency 16 --start-rate 500 >>"$OUT/sim.out" 2>&1 &
    SIM_PID=$!
  fi
  T0=$(date +%s)
  for _ in $(seq 1800); do
    kill -0 "$SIM_PID" 2>/dev/null || { echo "the simulator exited" >&2; exit 1; }
    c=$(connected "$OUT/sim.out" "$MARK")
    (( ${c:-0} >= N )) && break
    sleep 1
  done
  UP=$(( $(date +%s) - T0 ))
  sleep 20
  L1=$(latency "/v1/nodes?limit=100" 100)
  L2=$(latency "/v1/nodes/{id}" 100)
  L3=$(latency "/v1/nodes" 10)
  echo "| $M | $UP s | $L1 ms | $L2 ms | $L3 ms | $(cut -d' ' -f1 /proc/loadavg) |" | tee -a "$OUT/results.md"
done
echo "(logs in $OUT)"
