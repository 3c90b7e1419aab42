#!/bin/sh
# Runs every libFuzzer target for a bounded time. Usage: fuzz.sh <build-dir> <seconds>
set -eu
build=$1
seconds=$2
root=$(cd "$(dirname "$0")/.." && pwd)
found=0
for target in "$build"/fuzz/*_fuzz; do
  [ -x "$target" ] || continue
  found=1
  name=$(basename "$target")
  corpus="$build/corpus/$name"
  mkdir -p "$corpus"
  seeds="$root/fuzz/corpus/$name"
  echo "fuzz: $name for ${seconds}s"
  if [ -d "$seeds" ]; then
    "$target" -max_total_time="$seconds" -print_final_stats=1 "$corpus" "$seeds" 2>&1 | tail -3
  else
    "$target" -max_total_time="$seconds" -print_final_stats=1 "$corpus" 2>&1 | tail -3
  fi
done
[ "$found" = 1 ] || { echo "fuzz: no targets in $build/fuzz"; exit 1; }
