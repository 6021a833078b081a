#!/usr/bin/env bash
# Installs the system services the end-to-end tests start for real, when missing.
# Idempotent and quiet when everything is present. Debian packages only; the tests
# start their own instances on 127.0.0.1, so no package daemon is started here.
#   prometheus               /usr/bin/prometheus, /usr/bin/promtool  (2.42 on Debian 12)
#   prometheus-alertmanager  /usr/bin/prometheus-alertmanager, /usr/bin/amtool  (0.25)
#   postgresql               initdb, pg_ctl, postgres in /usr/lib/postgresql/<major>/bin (15);
#                            the store tests start a private cluster from them
#   libboost-dev             Boost headers, to build confseq (the statistics' test oracle)
#   chromium chromium-driver /usr/bin/chromium, /usr/bin/chromedriver: the page's browser
#                            tests (tests/e2e/test_ui.py) drive it headless with selenium
set -euo pipefail
need=()
have() { command -v "$1" >/dev/null 2>&1; }
# The server binaries are off PATH on Debian: look where tests/harness/postgres.py looks.
have_postgres() {
  local dir
  for dir in "$(pg_config --bindir 2>/dev/null)" /usr/lib/postgresql/*/bin; do
    [[ -x $dir/initdb && -x $dir/pg_ctl && -x $dir/postgres ]] && return 0
  done
  return 1
}
{ have prometheus && have promtool; } || need+=(prometheus)
{ have prometheus-alertmanager && have amtool; } || need+=(prometheus-alertmanager)
have_postgres || need+=(postgresql)
[[ -d /usr/include/boost ]] || need+=(libboost-dev)
{ have chromium && have chromedriver; } || need+=(chromium chromium-driver)
# (to come as backends are added: redis-server)
if ((${#need[@]})); then
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  # Keep the packages' own services from starting (they would listen on all interfaces;
  # postgresql's main cluster is created but stays stopped).
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  echo "installing ${need[*]} (Debian packages)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
