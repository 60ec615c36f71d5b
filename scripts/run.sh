#!/bin/sh
# `make run`: starts tickerd with config/tickerd.conf in the foreground.
# Without TICKERD_REDIS_URL, a private redis-server is started first, with its
# data under var/redis, on 127.0.0.1:6379 (or the next free port), and
# stopped again when tickerd exits (Ctrl-C).
set -e
cd "$(dirname "$0")/.."
CONF=${TICKERD_CONF:-config/tickerd.conf}
REDIS_PID=""

port_free() {
    ! (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null
}

cleanup() {
    [ -n "$REDIS_PID" ] && kill "$REDIS_PID" 2>/dev/null || true
}

if [ -z "$TICKERD_REDIS_URL" ]; then
    PORT=6379
    while ! port_free "$PORT"; do PORT=$((PORT + 1)); done
    mkdir -p var/redis
    redis-server --port "$PORT" --bind 127.0.0.1 --dir "$PWD/var/redis" \
        --appendonly yes --save '' --daemonize no --logfile "$PWD/var/redis/redis.log" &
    REDIS_PID=$!
    trap cleanup EXIT INT TERM
    i=0
    until redis-cli -p "$PORT" ping >/dev/null 2>&1; do
        i=$((i + 1)); [ $i -gt 50 ] && { echo "redis-server did not start: see var/redis/redis.log"; exit 1; }
        sleep 0.1
    done
    export TICKERD_REDIS_URL="redis://127.0.0.1:$PORT/0"
    CLI="redis-cli"
    [ "$PORT" != 6379 ] && CLI="redis-cli -p $PORT"
else
    CLI="redis-cli -u $TICKERD_REDIS_URL"
fi

LISTEN=$(sed -n 's/^listen *= *//p' "$CONF" | head -n 1)
LISTEN=${LISTEN:-127.0.0.1:8080}
HOSTPORT=$(echo "$LISTEN" | sed 's/^\*:/127.0.0.1:/')
cat <<MSG

  tickerd is starting on http://$HOSTPORT/  (Redis: $TICKERD_REDIS_URL)

  Open the demo:   http://$HOSTPORT/
  Subscribe:       ws://$HOSTPORT/v1/ws?region=mena&lang=en
  Publish an item: $CLI XADD ticker:breaking '*' lang en region mena text "Test item"
  Or:              build/tickerctl publish --lang en --region mena --text "Test item"

  Ctrl-C stops tickerd$( [ -n "$REDIS_PID" ] && echo " and the private Redis").

MSG
build/tickerd -c "$CONF"
