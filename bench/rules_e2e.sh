#!/usr/bin/env bash
# Rules end to end: events/s through broker + rule vs broker alone, on a real `ganglion edge`.
#
#   bench/rules_e2e.sh [--build DIR] [--events N] [--runs R] [--qos 0|1]
#
# One edge node (port 0, temp data folder). mosquitto_pub -l publishes N JSON telemetry lines
# ({"temperature": 51..99, "deviceId": "dNN", "ts": ...}, ~70 bytes) to devices/<d>/telemetry;
# mosquitto_sub -C counts what arrives and the clock runs from the first publish to the last
# message received. Scenarios, each run R times (medians reported):
#   broker      a subscriber on the input topic (no rule): the broker alone
#   rule-all    SELECT * FROM demo WHERE temperature > 50, every event passes, published by
#               the rule's mqtt sink to alerts/{{.deviceId}} (sendSingle); subscriber on alerts/#
#   rule-half   the same rule, half of the events pass; events/s counts the input events
# The rule's bufferLength is raised to 10^6 so that a burst is queued, not dropped; drops are
# read from /rules/<id>/status and printed. Prints a Markdown table.
set -euo pipefail

BUILD=build/h-bench
EVENTS=200000
RUNS=3
QOS=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) BUILD=$2; shift 2 ;;
    --events) EVENTS=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --qos) QOS=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
GANGLION=${GANGLION_BIN:-$BUILD/bin/ganglion}
[[ -x $GANGLION ]] || { echo "no ganglion binary at $GANGLION (--build DIR)" >&2; exit 2; }

WORK=$(mktemp -d /tmp/rules-e2e.XXXXXX)
EDGE_PID=
cleanup() {
  [[ -n $EDGE_PID ]] && kill "$EDGE_PID" 2>/dev/null && wait "$EDGE_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

python3 - "$WORK" "$EVENTS" <<'PY'
import json, sys
work, n = sys.argv[1], int(sys.argv[2])
with open(f"{work}/all.txt", "w") as a, open(f"{work}/half.txt", "w") as h:
    for i in range(n):
        a.write(json.dumps({"temperature": 51 + i % 49, "deviceId": f"d{i % 100:02d}", "ts": 1700000000000 + i}) + "\n")
        h.write(json.dumps({"temperature": (51 if i % 2 else 10) + i % 40, "deviceId": f"d{i % 100:02d}", "ts": 1700000000000 + i}) + "\n")
PY

"$GANGLION" edge --data.dir "$WORK/data" --http.listen 127.0.0.1:0 --mqtt.listeners tcp://127.0.0.1:0 \
  --mqtt.sys_interval 0ms --mqtt.max_queued_messages 10000000 --mqtt.max_queued_bytes 4GiB \
  --log.level warn > "$WORK/edge.log" 2>&1 &
EDGE_PID=$!
for _ in $(seq 100); do [[ -s $WORK/data/endpoints.json ]] && break; sleep 0.1; done
read -r HTTP PORT < <(python3 -c "
import json; e = json.load(open('$WORK/data/endpoints.json'))
print(e['http'], e['mqtt'][0].rsplit(':', 1)[1])")
api() { curl -s -S -X "$1" "http://$HTTP$2" ${3:+-H 'Content-Type: application/json' -d "$3"}; }

api POST /streams '{"sql": "CREATE STREAM demo (temperature FLOAT, deviceId STRING, ts BIGINT) WITH (DATASOURCE=\"devices/+/telemetry\", FORMAT=\"json\")"}' >/dev/null

# measure <subscribe topic> <expected messages> <payload file>: prints events/s (input events)
measure() {
  local topic=$1 expect=$2 file=$3 log=$WORK/sub.log
  : > "$log"
  timeout 300 stdbuf -oL mosquitto_sub -h 127.0.0.1 -p "$PORT" -q "$QOS" -d -t "$topic" -C "$expect" > "$log" 2>&1 &
  local sub=$!
  for _ in $(seq 200); do grep -q '^Subscribed' "$log" && break; sleep 0.05; done
  local t0 t1
  t0=$(date +%s.%N)
  mosquitto_pub -h 127.0.0.1 -p "$PORT" -q "$QOS" -t devices/d00/telemetry -l < "$file"
  if ! wait "$sub"; then echo "timeout: $(grep -c PUBLISH "$log") of $expect received" >&2; echo 0; return; fi
  t1=$(date +%s.%N)
  python3 -c "print(round($EVENTS / ($t1 - $t0)))"
}
median() { tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A results
for run in $(seq "$RUNS"); do
  results[broker]+="$(measure 'devices/+/telemetry' "$EVENTS" "$WORK/all.txt") "
  api POST /rules '{"id": "filter", "sql": "SELECT * FROM demo WHERE temperature > 50", "actions": [{"mqtt": {"topic": "alerts/{{.deviceId}}", "qos": '"$QOS"', "sendSingle": true}}], "options": {"bufferLength": 1000000}}' >/dev/null
  results[rule_all]+="$(measure 'alerts/#' "$EVENTS" "$WORK/all.txt") "
  results[rule_half]+="$(measure 'alerts/#' "$((EVENTS / 2))" "$WORK/half.txt") "
  status=$(api GET /rules/filter/status)
  drops=$(python3 -c "import json,sys; s=json.loads(sys.argv[1]); print(s['dropped_queue_full_total'], s['errors_total'], s['sink_mqtt_0_0_exceptions_total'])" "$status")
  api DELETE /rules/filter >/dev/null
  echo "run $run done; rule drops (queue full) / evaluation errors / sink errors: $drops" >&2
done

rss=$(awk '/VmHWM/ {print $2}' /proc/$EDGE_PID/status)
echo
echo "| scenario (QoS $QOS, $EVENTS events, median of $RUNS) | events/s | vs broker alone | runs |"
echo "| --- | ---: | ---: | --- |"
b=$(echo ${results[broker]} | median)
for k in broker rule_all rule_half; do
  m=$(echo ${results[$k]} | median)
  ratio=$(python3 -c "print(f'{$m / $b:.2f}' if $b else '-')")
  echo "| $k | $m | $ratio | ${results[$k]}|"
done
echo
echo "edge peak RSS: $((rss / 1024)) MiB"
