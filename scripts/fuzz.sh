#!/bin/sh
# Runs every libFuzzer target (build/<dir>/fuzz/*_fuzz) for a bounded time, each with its seed
# corpus fuzz/corpus/<target>/ when there is one. Usage: fuzz.sh <build-dir> <seconds>
# Crash inputs go to <build-dir>/fuzz-artifacts/, each target's full output to
# <build-dir>/fuzz-logs/<target>.log. Exits 1 when any target found a crash, a leak,
# undefined behaviour or a timeout (the names are listed at the end).
set -eu
build=$1
seconds=$2
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$build/fuzz-artifacts" "$build/fuzz-logs"
# UndefinedBehaviorSanitizer only prints by default; a finding must stop the target.
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
found=0
failed=""
for target in "$build"/fuzz/*_fuzz; do
  [ -x "$target" ] || continue
  found=1
  name=$(basename "$target")
  corpus="$build/corpus/$name"
  mkdir -p "$corpus"
  seeds="$root/fuzz/corpus/$name"
  [ -d "$seeds" ] || seeds=""
  log="$build/fuzz-logs/$name.log"
  echo "fuzz: $name for ${seconds}s"
  # $seeds is empty or one path without spaces (fuzz/corpus/<target>).
  # shellcheck disable=SC2086
  if "$target" -max_total_time="$seconds" -print_final_stats=1 \
      -artifact_prefix="$build/fuzz-artifacts/$name-" "$corpus" $seeds >"$log" 2>&1; then
    tail -3 "$log"
  else
    tail -40 "$log"
    failed="$failed $name"
  fi
done
[ "$found" = 1 ] || { echo "fuzz: no targets in $build/fuzz"; exit 1; }
if [ -n "$failed" ]; then
  echo "fuzz: FAILED:$failed (inputs in $build/fuzz-artifacts, logs in $build/fuzz-logs)"
  exit 1
fi
echo "fuzz: every target ran ${seconds}s without a finding"
