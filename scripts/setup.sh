#!/usr/bin/env bash
# Install the system packages Kouan needs: Mosquitto, PostgreSQL with TimescaleDB.
# Idempotent: a machine that already has them is left as it is.
set -euo pipefail
cd "$(dirname "$0")/.."

have_all() {
    command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || return 1
    command -v mosquitto_passwd >/dev/null 2>&1 || return 1
    ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || return 1
    compgen -G "/usr/share/postgresql/*/extension/timescaledb--*.sql" >/dev/null || return 1
}

# Browser tests of the dashboard: Debian's Chromium (Playwright drives it, so no
# browser download) and the Noto CJK fonts the dashboard's font stack falls back to.
if [ ! -x /usr/bin/chromium ] || [ -z "$(fc-list "Noto Sans CJK SC" family 2>/dev/null)" ]; then
    if [ -f /etc/debian_version ]; then
        echo "setup: installing chromium and fonts-noto-cjk from Debian's archive"
        BROWSER_SUDO=""; if [ "$(id -u)" -ne 0 ]; then BROWSER_SUDO="sudo"; fi
        $BROWSER_SUDO apt-get update -qq || echo "setup: apt-get update reported errors; continuing"
        DEBIAN_FRONTEND=noninteractive $BROWSER_SUDO apt-get install -y -qq chromium fonts-noto-cjk >/dev/null
    else
        echo "setup: install Chromium (/usr/bin/chromium) and Noto Sans CJK SC by hand for the browser tests" >&2
    fi
fi

if have_all; then
    echo "setup: Mosquitto, PostgreSQL and TimescaleDB present"
    exit 0
fi

if [ ! -f /etc/debian_version ]; then
    cat >&2 <<MSG
setup: this is not a Debian machine. Install by hand, then run make again:
  - Mosquitto 2.x (mosquitto and mosquitto_passwd on PATH)
  - PostgreSQL 15, 16 or 17 server binaries (pg_ctl, initdb)
  - TimescaleDB 2.x for that PostgreSQL (Apache-licensed build is enough)
MSG
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

echo "setup: installing Mosquitto and PostgreSQL from Debian's archive"
$SUDO apt-get update -qq || echo "setup: apt-get update reported errors; continuing with the lists it has"
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mosquitto mosquitto-clients postgresql >/dev/null
# Debian's package starts its own broker and cluster on the default ports; Kouan
# uses private instances on its own ports and leaves those as they are.
$SUDO bash scripts/install-timescaledb.sh
echo "setup: done"
