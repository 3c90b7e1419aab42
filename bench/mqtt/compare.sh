#!/bin/sh
# Our MQTT broker vs Debian's mosquitto, same scenarios, one table. See bench/mqtt/README.md.
# Usage: bench/mqtt/compare.sh [--build DIR] [--quick] [--runs N] [--json FILE] [--help]
# Both brokers run on loopback on free ports and are stopped at the end, also on Ctrl-C.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
# 10,000 idle connections need as many descriptors in the generator and in each broker.
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -gt 65536 ]; then hard=65536; fi
ulimit -n "$hard" 2>/dev/null || true
exec /usr/bin/python3 "$here/compare.py" "$@"
