#!/bin/sh
# clang-format check of every source file, then clang-tidy over the project's own sources.
# Usage: lint.sh <build-dir with compile_commands.json>
set -eu
build=$1
cd "$(dirname "$0")/.."
echo "lint: clang-format"
git ls-files '*.h' '*.cc' '*.c' | xargs clang-format --dry-run --Werror
echo "lint: clang-tidy"
git ls-files 'src/*.cc' | grep -v '_test\.cc$' | xargs clang-tidy -p "$build" --quiet
