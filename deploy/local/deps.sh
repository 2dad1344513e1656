#!/usr/bin/env bash
# deps.sh - installs, through apt-get, what whistle needs and this machine lacks.
set -euo pipefail
pkgs=(build-essential pkg-config protobuf-c-compiler libprotobuf-c-dev libzmq3-dev libuv1-dev
      libpq-dev libconfig-dev libjson-c-dev libcmocka-dev libfriso-dev friso-dict libopencc-dev libopencc-data postgresql jq procps)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
