#!/bin/sh
# make demo: an edge node on embedded defaults in a temporary folder, a simulated sensor fleet
# publishing to it, and live figures read from the running node, for the given number of
# seconds (or until Ctrl-C). Every figure shown is measured, none is a constant.
# Usage: demo.sh <ganglion-binary> [seconds]
set -eu
bin=$1
seconds=${2:-30}
if "$bin" help 2>/dev/null | grep -q '^  demo'; then
  exec "$bin" demo --duration "${seconds}s"
fi
dir=$(mktemp -d /tmp/ganglion-demo-XXXXXX)
"$bin" edge --data.dir "$dir/data" --http.listen 127.0.0.1:0 \
  --mqtt.listeners tcp://127.0.0.1:0 --log.level warn &
edge=$!
sim=""
cleanup() {
  [ -n "$sim" ] && kill -TERM "$sim" 2>/dev/null && wait "$sim" 2>/dev/null
  kill -TERM "$edge" 2>/dev/null && wait "$edge" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
i=0
while [ ! -f "$dir/data/endpoints.json" ]; do
  i=$((i + 1)); [ $i -lt 200 ] || { echo "demo: edge node did not start"; exit 1; }
  sleep 0.1
done
http=$(sed -n 's/.*"http":"\([^"]*\)".*/\1/p' "$dir/data/endpoints.json")
mqtt=$(sed -n 's/.*"mqtt":\["\([^"]*\)".*/\1/p' "$dir/data/endpoints.json")
metric() { curl -s "http://$http/metrics" | sed -n "s/^$1 //p" | head -1; }
echo "demo: edge node up: http://$http (health $(curl -s "http://$http/healthz")), MQTT $mqtt"
"$bin" sim devices --broker "$mqtt" --site factory-eu --devices 100 --rate 2/s \
  --devices-per-connection 10 --ground-truth "$dir/ground-truth.jsonl" \
  --duration "${seconds}s" --status-interval 10s &
sim=$!
echo "demo: 100 simulated devices (temperature, vibration, power, door, badge, camera) at 2 msg/s each"
start=$(date +%s)
last=0
while kill -0 "$sim" 2>/dev/null; do
  sleep 5
  now=$(date +%s)
  received=$(metric ganglion_mqtt_messages_received_total)
  received=${received:-0}
  rate=$(( (received - last) / 5 ))
  last=$received
  echo "demo: t=$((now - start))s clients=$(metric ganglion_mqtt_clients_connected) messages=$received (${rate}/s) rss=$(( $(metric process_resident_memory_bytes | cut -d. -f1) / 1048576 )) MiB"
done
wait "$sim" 2>/dev/null || true
sim=""
echo "demo: done: $(metric ganglion_mqtt_messages_received_total) messages received by the edge node, $(wc -l < "$dir/ground-truth.jsonl") anomalies injected (ground truth)"
