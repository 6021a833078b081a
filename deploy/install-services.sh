#!/usr/bin/env bash
# Installs the system services the end-to-end tests start for real, when missing.
# Idempotent and quiet when everything is present. Debian packages only.
set -euo pipefail
need=()
# (filled in as backends are added: redis-server, prometheus, prometheus-alertmanager)
if ((${#need[@]})); then
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
