#!/bin/sh
# Installs the Debian 12 packages Ganglion needs, only those missing, without questions.
# Quick (one dpkg-query) when everything is already present.
set -eu

PACKAGES="
build-essential cmake ninja-build ccache pkg-config
clang clang-format clang-tidy libclang-rt-14-dev
libboost-dev libssl-dev libsimdjson-dev nlohmann-json3-dev libyaml-cpp-dev
libspdlog-dev libfmt-dev libcli11-dev libsqlite3-dev libzstd-dev liblua5.4-dev
libgtest-dev libgmock-dev libbenchmark-dev
mosquitto mosquitto-clients python3-paho-mqtt curl openssl procps zstd
"

missing=""
for p in $PACKAGES; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  case "$status" in
    *"install ok installed"*) ;;
    *) missing="$missing $p" ;;
  esac
done

if [ -z "$missing" ]; then
  exit 0
fi

echo "install-deps: installing:$missing"
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
