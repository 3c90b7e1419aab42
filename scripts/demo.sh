#!/bin/sh
# make demo: starts an edge node on embedded defaults in a temporary folder, shows what it
# serves, and stops it cleanly after the given number of seconds (or on Ctrl-C).
# Usage: demo.sh <ganglion-binary> [seconds]
set -eu
bin=$1
seconds=${2:-30}
if [ -x "$bin" ] && "$bin" help 2>/dev/null | grep -q '^  demo'; then
  exec "$bin" demo --duration "${seconds}s"
fi
dir=$(mktemp -d /tmp/ganglion-demo-XXXXXX)
"$bin" edge --data.dir "$dir/data" --http.listen 127.0.0.1:0 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT INT TERM
i=0
while [ ! -f "$dir/data/endpoints.json" ]; do
  i=$((i + 1)); [ $i -lt 100 ] || { echo "demo: edge node did not start"; exit 1; }
  sleep 0.1
done
http=$(sed -n 's/.*"http":"\([^"]*\)".*/\1/p' "$dir/data/endpoints.json")
echo "demo: edge node up, http://$http"
echo "demo: GET /healthz -> $(curl -s "http://$http/healthz")"
echo "demo: GET /readyz  -> $(curl -s "http://$http/readyz")"
echo "demo: GET /metrics (first lines):"
curl -s "http://$http/metrics" | grep -v '^#' | head -10 | sed 's/^/  /'
echo "demo: running for ${seconds}s (Ctrl-C stops it)"
end=$(( $(date +%s) + seconds ))
while [ "$(date +%s)" -lt "$end" ] && kill -0 $pid 2>/dev/null; do
  rss=$(curl -s "http://$http/metrics" | sed -n 's/^process_resident_memory_bytes //p')
  echo "demo: $(date +%T) healthz=$(curl -s -o /dev/null -w '%{http_code}' "http://$http/healthz") rss_bytes=$rss"
  sleep 5
done
