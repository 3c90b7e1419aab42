#!/usr/bin/env bash
# A bench/fleet.sh HOOK: profiles the controller on the connected fleet and compares the API
# latency with the controller's MQTT loops, store writer and session-store thread at nice 0
# and nice 5 (reniced from outside, alternately), then records perf profiles of the
# controller and the simulator over the first 60 s of the reconnect storm.
#
#   HOOK=bench/fleet_profile_hook.sh bench/fleet.sh --build DIR --counts "10000"
#
# Env (from fleet.sh): CLOUD_PID SIM_PID API ADMIN CA N. Output in $PROFILE_OUT (default
# /tmp/ganglion-fleet-profile-N): roles.txt (thread id -> role, from one gdb backtrace:
# this pauses the controller for about a second, so run it after the measurements),
# steady.data and storm-*.data (perf record -e cpu-clock -g; `perf script -F tid | sort |
# uniq -c` gives CPU per thread), nice_ab.txt. Needs gdb and perf.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${PROFILE_OUT:-/tmp/ganglion-fleet-profile-$N}
mkdir -p "$OUT"
echo "start $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$OUT/log"

gdb -p "$CLOUD_PID" -batch -ex "thread apply all bt 30" 2>/dev/null | grep -E "^Thread|^#" >"$OUT/threads.txt"
python3 - "$OUT/threads.txt" >"$OUT/roles.txt" <<'PY'
import re, sys
cur, roles = None, {}
for line in open(sys.argv[1]):
    m = re.match(r"Thread \d+ \(Thread 0x[0-9a-f]+ \(LWP (\d+)\)", line)
    if m:
        cur = int(m.group(1)); roles[cur] = set(); continue
    for key, role in (("StoreWriter::run", "writer"), ("SessionStore::run", "sessions"),
                      ("IoPool::start", "loop"), ("SystemClock::run", "clock"), ("IoPool::wait", "main")):
        if cur is not None and key in line:
            roles[cur].add(role)
loops = sorted(t for t, r in roles.items() if "loop" in r)
for t in sorted(roles):
    r = ",".join(sorted(roles[t])) or "?"
    if "loop" in roles[t]:  # the API's pool (cloud.api.threads, 2) is created after the nodes'
        r = "mqtt-loop" if loops.index(t) < len(loops) - 2 else "api-loop"
    print(t, r)
PY
cat "$OUT/roles.txt"

perf record -e cpu-clock -F 499 -g -p "$CLOUD_PID" -o "$OUT/steady.data" -- sleep 25 >/dev/null 2>&1 &
PERF=$!
python3 "$HERE/api_latency.py" "$API" "$ADMIN" "$CA" 100 "/v1/nodes?limit=100" >"$OUT/lat-during-perf.txt"
wait $PERF

LOW=$(awk '$2=="mqtt-loop"||$2=="writer"||$2=="sessions"{print $1}' "$OUT/roles.txt")
for round in 1 2 3; do
  for nice in 0 5; do
    for t in $LOW; do renice -n "$nice" -p "$t" >/dev/null; done
    sleep 3
    L1=$(python3 "$HERE/api_latency.py" "$API" "$ADMIN" "$CA" 100 "/v1/nodes?limit=100")
    L2=$(python3 "$HERE/api_latency.py" "$API" "$ADMIN" "$CA" 100 "/v1/nodes/{id}")
    echo "round $round nice $nice | paged p50 p99 $L1 | by-id p50 p99 $L2 | load $(cut -d' ' -f1 /proc/loadavg)" | tee -a "$OUT/nice_ab.txt"
  done
done
for t in $LOW; do renice -n 0 -p "$t" >/dev/null; done

# The storm: attach to the restarted controller (same data folder) and to the simulator.
(
  P=""
  for _ in $(seq 300); do
    P=$(pgrep -n -f "cloud.data_dir ${CA%/cloud/pki/ca.pem}/cloud")
    [[ -n $P && $P != "$CLOUD_PID" ]] && break
    sleep 0.2
  done
  perf record -e cpu-clock -F 499 -g -p "$P" -o "$OUT/storm-cloud.data" -- sleep 60 >/dev/null 2>&1 &
  perf record -e cpu-clock -F 499 -g -p "$SIM_PID" -o "$OUT/storm-sim.data" -- sleep 60 >/dev/null 2>&1 &
  wait
) >/dev/null 2>&1 &
echo "end $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/log"
