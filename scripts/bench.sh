#!/bin/sh
# Runs every benchmark of a build; each prints its own comparison table.
# Usage: bench.sh <build-dir>
set -eu
build=$1
for b in "$build"/bench/*_bench; do
  [ -x "$b" ] || continue
  echo "== $(basename "$b")"
  "$b"
done
for s in "$(dirname "$0")"/../bench/*.sh; do
  [ -f "$s" ] || continue
  echo "== $(basename "$s")"
  sh "$s" "$build"
done
