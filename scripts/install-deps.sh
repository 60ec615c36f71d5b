#!/bin/sh
# Installs the Debian 12 packages tickerd needs to build, run and test.
# Only what is missing is installed; as root directly, otherwise through sudo.
set -e
PKGS="build-essential pkg-config libwebsockets-dev libwebsockets-evlib-uv libuv1-dev \
libhiredis-dev libjansson-dev libinih-dev libjwt-dev libsystemd-dev libcmocka-dev \
redis-server redis-tools python3 python3-pytest python3-websockets python3-redis \
python3-prometheus-client python3-jwt openssl systemd"
# make test: valgrind, TLS certificates, sentinels and nginx for the cluster
# tests (Debian 12: /usr/sbin/nginx is in "nginx"; nginx-light is only a
# metapackage), promtool (in "prometheus") for the /metrics test, Chromium for
# the browser tests (node and npm only where missing).
if [ "$1" = "--test" ]; then
    PKGS="$PKGS valgrind openssl redis-sentinel nginx chromium python3-hypothesis prometheus \
slowhttptest python3-feedparser python3-wsproto"
    command -v npm >/dev/null 2>&1 || PKGS="$PKGS nodejs npm"
fi
[ "$1" = "--fuzz" ] && PKGS="$PKGS clang"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $missing
