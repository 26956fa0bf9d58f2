#!/usr/bin/env bash
# Build and install the TimescaleDB extension (Apache-licensed feature set) for the
# installed PostgreSQL major version.
#
# Debian 13 ships postgresql-17-timescaledb as a binary package; Debian 12 does not
# ship TimescaleDB at all, so there the extension is built from Debian 13's source
# package against this server's headers (postgresql-server-dev-NN).
set -euo pipefail

pg_major() {
    ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -n 1
}

already_installed() {
    compgen -G "/usr/share/postgresql/$major/extension/timescaledb--*.sql" >/dev/null
}

major=$(pg_major)
if [ -z "$major" ]; then
    echo "PostgreSQL server not found under /usr/lib/postgresql: install postgresql first" >&2
    exit 1
fi

if already_installed; then
    echo "TimescaleDB already installed for PostgreSQL $major"
    exit 0
fi

if apt-cache show "postgresql-$major-timescaledb" >/dev/null 2>&1; then
    echo "Installing postgresql-$major-timescaledb from the distribution"
    DEBIAN_FRONTEND=noninteractive apt-get install -y "postgresql-$major-timescaledb"
    exit 0
fi

echo "Building TimescaleDB from Debian 13 (trixie) source package for PostgreSQL $major"
src_list=/etc/apt/sources.list.d/kouan-trixie-src.sources
if [ ! -f "$src_list" ]; then
    cat > "$src_list" <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    apt-get update -o Dir::Etc::sourcelist="$src_list" -o Dir::Etc::sourceparts=- \
        -o APT::Get::List-Cleanup=0 >/dev/null
fi

DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    dpkg-dev cmake gcc make libssl-dev libkrb5-dev "postgresql-server-dev-$major" >/dev/null

build_dir=$(mktemp -d /tmp/kouan-timescaledb.XXXXXX)
cd "$build_dir"
apt-get source --download-only timescaledb >/dev/null
dpkg-source -x --no-check ./*.dsc src >/dev/null
cd src
./bootstrap -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF -DAPACHE_ONLY=ON \
    -DWARNINGS_AS_ERRORS=OFF -DPG_CONFIG="/usr/lib/postgresql/$major/bin/pg_config" >/dev/null
make -C build -j"$(nproc)" >/dev/null
make -C build install >/dev/null
rm -rf "$build_dir"
echo "TimescaleDB built and installed for PostgreSQL $major"
