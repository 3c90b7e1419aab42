#!/usr/bin/env bash
# Enrolment rate: a fresh controller and `ganglion sim nodes` enrolling COUNT new nodes.
#
# Starts `ganglion cloud` on free loopback ports with an empty data folder, creates a
# bootstrap token, starts the simulator (--io-threads 1 --enrol-concurrency 16, as
# bench/fleet.sh) and prints the time until all COUNT nodes are connected (enrolment
# included), the simulator's enrol/s per status line, and 15 s later the RSS of the
# controller and of the simulator (per node, the idle base included). Run two binaries
# alternately to compare them under the same machine load.
#
# Usage: bench/fleet_enrol.sh BIN COUNT [extra controller options...]
#   MAXT=600 (seconds before giving up), KEEP=1 keeps the work folder, SIM_BIN runs the
#   simulator from another binary (to tell the two sides apart).
set -uo pipefail
[[ $# -ge 2 ]] || { sed -n 2,14p "$0" >&2; exit 2; }
BIN=$1; N=$2; shift 2
W=$(mktemp -d /tmp/ganglion-enrol-XXXXXX)
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
fp() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
AP=$(fp); MP=$(fp)
"$BIN" cloud --cloud.data_dir "$W/cloud" --cloud.api.listen "127.0.0.1:$AP" \
  --cloud.mqtt.listen "tls://127.0.0.1:$MP" --cloud.heartbeat.interval 10s --log.level warn "$@" \
  >"$W/cloud.out" 2>&1 &
CP=$!
SP=""
cleanup() {
  [[ -n $SP ]] && kill "$SP" 2>/dev/null && wait "$SP" 2>/dev/null
  kill "$CP" 2>/dev/null && wait "$CP" 2>/dev/null
  [[ -n ${KEEP:-} ]] && echo "(work folder $W)" || rm -rf "$W"
}
trap cleanup EXIT
for _ in $(seq 300); do [[ -f $W/cloud/endpoints.json ]] && break; sleep 0.1; done
[[ -f $W/cloud/endpoints.json ]] || { echo "controller did not start:" >&2; tail -5 "$W/cloud.out" >&2; exit 1; }
ADMIN=$(grep -o 'admin API token[^:]*: [^ ]*' "$W/cloud.out" | head -1 | awk '{print $NF}')
CA=$W/cloud/pki/ca.pem
API=https://127.0.0.1:$AP
TOKEN=$(python3 - "$API" "$ADMIN" "$CA" $((N * 2)) <<'PY'
import json, ssl, sys, urllib.request
api, admin, ca, uses = sys.argv[1:5]
req = urllib.request.Request(api + "/v1/tokens", method="POST",
                             data=json.dumps({"uses": int(uses), "ttl": "12h"}).encode(),
                             headers={"Authorization": "Bearer " + admin, "Content-Type": "application/json"})
print(json.load(urllib.request.urlopen(req, context=ssl.create_default_context(cafile=ca)))["token"])
PY
)
T0=$(date +%s.%N)
"${SIM_BIN:-$BIN}" sim nodes --count "$N" --cloud "$API" --token "$TOKEN" --ca "$CA" --heartbeat 10s \
  --batch-interval 5s --data "$W/sim" --prefix fleet --status-interval 2s --io-threads 1 \
  --enrol-concurrency 16 --start-rate 500 >"$W/sim.out" 2>&1 &
SP=$!
RESULT=timeout
while sleep 1; do
  c=$(grep -o 'connected [0-9]*' "$W/sim.out" | tail -1 | awk '{print $2+0}')
  if (( ${c:-0} >= N )); then RESULT=$(python3 -c "print(f'{$(date +%s.%N) - $T0:.1f} s')"); break; fi
  (( $(date +%s) - ${T0%.*} > ${MAXT:-600} )) && break
done
echo "$N nodes: all connected after $RESULT; load $(cut -d' ' -f1 /proc/loadavg); last: $(tail -1 "$W/sim.out" | cut -c1-110)"
echo "enrol/s per status line: $(grep -o 'enrol/s [0-9.]*' "$W/sim.out" | awk '{print $2}' | tr '\n' ' ')"
sleep 15
CR=$(awk '/VmRSS/{print $2}' /proc/$CP/status); SR=$(awk '/VmRSS/{print $2}' /proc/$SP/status)
echo "controller RSS $((CR / 1024)) MiB ($((CR / N)) KiB/node), simulator RSS $((SR / 1024)) MiB ($((SR / N)) KiB/node)"
