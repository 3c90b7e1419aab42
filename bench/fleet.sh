#!/usr/bin/env bash
# Fleet scale: how much fleet one `ganglion cloud` holds.
#
# Starts a controller on fixed loopback ports, then `ganglion sim nodes` with growing counts
# (each node: own key + certificate, MQTT 5 over mutual TLS, heartbeat every $HEARTBEAT,
# one uplink batch every $BATCH). Per count it measures
#   - time until all nodes are connected (enrolment of the new ones included),
#   - controller CPU (% of one core, over $WINDOW s of steady state) and RSS, per node,
#   - the simulator's RSS per node,
#   - API latency under that load (p50/p99 of $API_REQUESTS sequential requests each):
#     GET /v1/nodes?limit=100 (first page), GET /v1/nodes/{id} (a random node), and the
#     unpaged GET /v1/nodes (every node; $FULL_REQUESTS requests),
#   - reconnect storm: SIGTERM + restart of the controller, time from "controller ready"
#     until every node is connected again (nodes back off 1..60 s with full jitter).
# Identities are cached in one --data folder, so the 5,000 run reuses the 1,000 enrolled
# nodes and enrols 4,000 new ones.
#
# The bootstrap token allows $TOKEN_USES enrolments (default: the largest count + 10%: an
# enrolment retried after a timeout uses one more).
#
# HOOK, when set, is a shell command run after the measurements of each count and before its
# reconnect storm, with CLOUD_PID, SIM_PID, API, ADMIN, CA and N in its environment (e.g. a
# profile or an A/B on the same connected fleet).
#
# Usage: bench/fleet.sh [--build DIR] [--counts "1000 5000 10000"] [--out FILE]
# Needs: ulimit -n above the largest count + 200 (the script raises it when it can).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=build/h-agent
COUNTS="1000 5000 10000"
OUT=""
HEARTBEAT=${HEARTBEAT:-10s}
BATCH=${BATCH:-5s}
WINDOW=${WINDOW:-30}
API_REQUESTS=${API_REQUESTS:-100}
FULL_REQUESTS=${FULL_REQUESTS:-10}
HOOK=${HOOK:-}
CONNECT_TIMEOUT=${CONNECT_TIMEOUT:-600}
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) BUILD=$2; shift 2 ;;
    --counts) COUNTS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "usage: $0 [--build DIR] [--counts \"1000 5000 10000\"] [--out FILE]" >&2; exit 2 ;;
  esac
done
BIN=${GANGLION_BIN:-$BUILD/bin/ganglion}
[[ -x $BIN ]] || { echo "fleet.sh: no $BIN (build the ganglion target)" >&2; exit 2; }
if ! "$BIN" cloud --help >/dev/null 2>&1; then
  echo "fleet.sh: $BIN has no 'cloud' command yet (the controller is not in this build)" >&2
  exit 3
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

WORK=$(mktemp -d /tmp/ganglion-fleet-XXXXXX)
CLOUD_PID=""
SIM_PID=""
cleanup() {
  [[ -n $SIM_PID ]] && kill "$SIM_PID" 2>/dev/null && wait "$SIM_PID" 2>/dev/null || true
  [[ -n $CLOUD_PID ]] && kill "$CLOUD_PID" 2>/dev/null && wait "$CLOUD_PID" 2>/dev/null || true
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
API_PORT=$(free_port)
MQTT_PORT=$(free_port)
now() { date +%s.%N; }

start_cloud() {
  rm -f "$WORK/cloud/endpoints.json"
  "$BIN" cloud --cloud.data_dir "$WORK/cloud" --cloud.api.listen "127.0.0.1:$API_PORT" \
    --cloud.mqtt.listen "tls://127.0.0.1:$MQTT_PORT" --cloud.heartbeat.interval "$HEARTBEAT" \
    --log.level warn >>"$WORK/cloud.out" 2>&1 &
  CLOUD_PID=$!
  for _ in $(seq 600); do
    [[ -f $WORK/cloud/endpoints.json ]] && return 0
    kill -0 "$CLOUD_PID" 2>/dev/null || { echo "controller exited:" >&2; tail -20 "$WORK/cloud.out" >&2; exit 1; }
    sleep 0.1
  done
  echo "controller did not start" >&2; exit 1
}

# CPU seconds (utime + stime) and RSS bytes of a process.
cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); split($0, f, " "); print (f[12] + f[13]) / hz }' "/proc/$1/stat"; }
rss_bytes() { awk '/VmRSS/ { print $2 * 1024 }' "/proc/$1/status"; }

# The "connected" count of the simulator's last status line after line $2.
sim_connected() { tail -n +"$(( ${2:-0} + 1 ))" "$1" 2>/dev/null | grep -o 'connected [0-9]*' | tail -1 | awk '{print $2+0}'; }
wait_connected() {  # file count timeout [after-line] -> seconds waited, or "timeout"
  local start; start=$(now)
  for _ in $(seq $(( $3 * 5 ))); do
    if [[ -n $SIM_PID ]] && ! kill -0 "$SIM_PID" 2>/dev/null; then echo "simulator-exited"; return 0; fi
    local c; c=$(sim_connected "$1" "${4:-0}"); c=${c:-0}
    if (( c >= $2 )); then python3 -c "print(f'{$(now) - $start:.1f}')"; return 0; fi
    sleep 0.2
  done
  echo timeout
}

api_latency() {  # path count -> "p50 p99" in ms; "{id}" in the path becomes a random node id
  python3 "$HERE/api_latency.py" "$API" "$ADMIN" "$CA" "$2" "$1"
}

start_cloud
ADMIN=$(grep -o 'admin API token[^:]*: [^ ]*' "$WORK/cloud.out" | head -1 | awk '{print $NF}')
API=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["api"])' "$WORK/cloud/endpoints.json")
CA=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ca"])' "$WORK/cloud/endpoints.json")
MAX=$(for c in $COUNTS; do echo "$c"; done | sort -n | tail -1)
TOKEN_USES=${TOKEN_USES:-$(( MAX + MAX / 10 ))}
TOKEN=$(python3 - "$API" "$ADMIN" "$CA" "$TOKEN_USES" <<'EOF'
import json, ssl, sys, urllib.request
api, admin, ca, uses = sys.argv[1:5]
req = urllib.request.Request(api + "/v1/tokens", method="POST",
                             data=json.dumps({"uses": int(uses), "ttl": "12h", "labels": {"bench": "fleet"}}).encode(),
                             headers={"Authorization": "Bearer " + admin, "Content-Type": "application/json"})
print(json.load(urllib.request.urlopen(req, context=ssl.create_default_context(cafile=ca)))["token"])
EOF
)
sleep 2
BASE_RSS=$(rss_bytes "$CLOUD_PID")
echo "controller pid $CLOUD_PID api $API mqtt tls://127.0.0.1:$MQTT_PORT; idle RSS $((BASE_RSS / 1048576)) MiB; work $WORK"

RESULTS="$WORK/results.md"
{
  echo "| nodes | all connected after | controller CPU (1 core) | CPU per 1k nodes | controller RSS | RSS per node | sim RSS per node | hb/s seen by sim | GET /v1/nodes?limit=100 p50 / p99 | GET /v1/nodes/{id} p50 / p99 | GET /v1/nodes (all) p50 / p99 | reconnect storm: all back after | load avg (1 min) |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
} >"$RESULTS"

for N in $COUNTS; do
  SIM_OUT="$WORK/sim-$N.out"
  "$BIN" sim nodes --count "$N" --cloud "$API" --token "$TOKEN" --ca "$CA" --heartbeat "$HEARTBEAT" \
    --batch-interval "$BATCH" --data "$WORK/sim" --prefix fleet --status-interval 2s \
    --io-threads 1 --enrol-concurrency 16 --start-rate 500 >"$SIM_OUT" 2>&1 &
  SIM_PID=$!
  UP=$(wait_connected "$SIM_OUT" "$N" "$CONNECT_TIMEOUT")
  echo "[$N] all connected after ${UP}s: $(tail -1 "$SIM_OUT")"
  sleep 10
  C0=$(cpu_seconds "$CLOUD_PID"); T0=$(now)
  LAT=$(api_latency "/v1/nodes?limit=100" "$API_REQUESTS")
  LAT_ONE=$(api_latency "/v1/nodes/{id}" "$API_REQUESTS")
  LAT_ALL=$(api_latency "/v1/nodes" "$FULL_REQUESTS")
  sleep_left=$(python3 -c "print(max(0, $WINDOW - ($(now) - $T0)))")
  sleep "$sleep_left"
  C1=$(cpu_seconds "$CLOUD_PID"); T1=$(now)
  LOAD=$(cut -d' ' -f1 /proc/loadavg)
  CPU=$(python3 -c "print(f'{100 * ($C1 - $C0) / ($T1 - $T0):.1f}')")
  RSS=$(rss_bytes "$CLOUD_PID")
  SIM_RSS=$(rss_bytes "$SIM_PID")
  HB=$(grep -o 'hb/s [0-9.]*' "$SIM_OUT" | tail -1 | awk '{print $2}')
  echo "[$N] controller CPU ${CPU}% RSS $((RSS / 1048576)) MiB; p50/p99 ms: GET /v1/nodes?limit=100 ${LAT// / / }, /v1/nodes/{id} ${LAT_ONE// / / }, /v1/nodes ${LAT_ALL// / / }"

  if [[ -n $HOOK ]]; then
    CLOUD_PID=$CLOUD_PID SIM_PID=$SIM_PID API=$API ADMIN=$ADMIN CA=$CA N=$N bash -c "$HOOK" || true
  fi

  # Reconnect storm: restart the controller, time until every node is connected again.
  kill -TERM "$CLOUD_PID"; wait "$CLOUD_PID" 2>/dev/null || true
  CLOUD_PID=""
  start_cloud
  # Only status lines printed after the restart count (the simulator prints every 2 s).
  MARK=$(wc -l <"$SIM_OUT")
  STORM=$(wait_connected "$SIM_OUT" "$N" "$CONNECT_TIMEOUT" "$MARK")
  echo "[$N] reconnect storm: all connected again ${STORM}s after the controller was ready"

  python3 - "$N" "$UP" "$CPU" "$RSS" "$BASE_RSS" "$SIM_RSS" "$HB" "$LAT" "$LAT_ONE" "$LAT_ALL" "$STORM" "$LOAD" >>"$RESULTS" <<'EOF'
import sys
n, up, cpu, rss, base, sim_rss, hb, lat, lat_one, lat_all, storm, load = sys.argv[1:13]
n = int(n); rss = int(rss); base = int(base); sim_rss = int(sim_rss)
pp = lambda s: " / ".join(s.split()) + " ms"
print(f"| {n:,} | {up} s | {cpu}% | {float(cpu) / n * 1000:.2f}% | {rss / 2**20:.0f} MiB | "
      f"{(rss - base) / n / 1024:.1f} KiB | {sim_rss / n / 1024:.1f} KiB | {hb} | {pp(lat)} | {pp(lat_one)} | {pp(lat_all)} | {storm} s | {load} |")
EOF
  kill -INT "$SIM_PID" 2>/dev/null; SIM_RC=0; wait "$SIM_PID" 2>/dev/null || SIM_RC=$?
  (( SIM_RC == 0 )) || echo "[$N] the simulator exited with status $SIM_RC (see $SIM_OUT)"
  SIM_PID=""
  sleep 5
done

echo
cat "$RESULTS"
[[ -n $OUT ]] && cp "$RESULTS" "$OUT"
echo "(logs in $WORK)"
