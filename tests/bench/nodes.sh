#!/bin/bash
# tests/bench/nodes.sh - `make bench` scenario "nodes" (issue 15's sizing
# model): NODES tickerd nodes (workers = 1 each) behind the shipped
# config/nginx-tickerd.conf on this box, driven by loadgen through nginx.
#
# The shipped file is changed by sed only in its ports, its upstream list
# and its listen address (127.0.0.1); it is included in an http {} block
# whose only other lines are paths and access_log off, in an nginx main
# config with NGINX_WORKERS workers of NOFILE descriptors each (nginx holds
# two descriptors a client: the client's and the upstream's).
#
# Runs, each bounded by loadgen's --timeout (with BENCH_LOCK set, each
# under flock $BENCH_LOCK: one measurement at a time on a shared box):
#   nodes-idle        N idle clients: RSS per connection of the nodes
#                     (loadgen), and from tests/bench/sample.py nginx's RSS
#                     and the kernel's socket memory (sockstat, Slab)
#   nodes-steady-{tickerd,nginx,redis}
#                     N clients, 20 items/s for DURATION s, three times: the
#                     same run with loadgen's CPU figures taken of the
#                     nodes, of nginx, of redis-server in turn (loadgen
#                     sums the CPU of the PIDs it is given)
# Raw JSON goes to $RAW/sizing/ (not read by report.py's table); the
# summary is tests/bench/sizing.py's.
#
# Called by run.sh with REDIS_PORT, REDIS_PID, LOADGEN, TICKERD_BIN, RAW,
# SCALE in the environment. Starts its processes on free loopback ports in
# a temp dir and stops them (by PID) on exit.
set -u
cd "$(dirname "$0")/../.."
ROOT=$PWD
NODES=${NODES:-4}
: "${REDIS_PORT:?}" "${REDIS_PID:?}" "${LOADGEN:?}" "${TICKERD_BIN:?}" "${RAW:?}"
case ${SCALE:-small} in
full) N=${NODES_CLIENTS:-16000} DURATION=10 HOLD=5 ;;
*) N=${NODES_CLIENTS:-4000} DURATION=5 HOLD=3 ;;
esac
NGINX_WORKERS=${NGINX_WORKERS:-4}
NOFILE=$(ulimit -Hn)
[ "$NOFILE" = unlimited ] && NOFILE=1048576
ulimit -n "$NOFILE"
# BENCH_LOCK=/tmp/bench.lock: take that lock for each loadgen run (not when
# the caller holds it already: that would wait for itself)
LOCK=${BENCH_LOCK:-}
SR=$RAW/sizing
mkdir -p "$SR"
rm -f "$SR"/nodes-*.json "$SR"/nodes-*.jsonl
WORK=$(mktemp -d /tmp/tickerd-nodes.XXXXXX)
STARTED=()

. tests/bench/lib.sh # stop_pid, free_port, wait_http
log() { printf '%s nodes: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

cleanup() {
    local pid
    for pid in "${STARTED[@]}"; do stop_pid "$pid"; done
    mkdir -p "$ROOT/build/bench/logs"
    cp "$WORK"/*.log "$ROOT/build/bench/logs/" 2>/dev/null
    cp "$WORK/nginx/error.log" "$ROOT/build/bench/logs/nodes-nginx-error.log" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- the nodes
STREAM="bench:nodes:$RANDOM$RANDOM"
NODE_PIDS=() NODE_PORTS=()
for i in $(seq "$NODES"); do
    port=$(free_port)
    cat >"$WORK/node$i.conf" <<EOF
[server]
listen = 127.0.0.1:$port
workers = 1
static_dir = $ROOT/clients/web
trusted_proxies = 127.0.0.1
[redis]
url = redis://127.0.0.1:$REDIS_PORT/0
[stream]
key = $STREAM
[limits]
max_connections = 200000
EOF
    "$TICKERD_BIN" -c "$WORK/node$i.conf" >>"$WORK/nodes-node$i.log" 2>&1 &
    NODE_PIDS+=($!) NODE_PORTS+=("$port")
    STARTED+=($!)
done
for port in "${NODE_PORTS[@]}"; do
    wait_http "http://127.0.0.1:$port/healthz" 20 || { log "node on $port did not start"; exit 1; }
done

# ---------------------------------------------------------------- nginx
NGINX_PORT=$(free_port)
mkdir -p "$WORK/nginx"
upstream=""
for port in "${NODE_PORTS[@]}"; do
    upstream+="    server 127.0.0.1:$port max_fails=0;\n"
done
# the shipped file: its two example nodes become ours, 8080 our port
sed -e "/server 127.0.0.1:8082 max_fails=0;/d" \
    -e "s#^    server 127.0.0.1:8081 max_fails=0;#$upstream#" \
    -e "s#listen 8080;#listen 127.0.0.1:$NGINX_PORT;#" \
    config/nginx-tickerd.conf >"$WORK/nginx/tickerd.conf"
user=""
[ "$(id -u)" = 0 ] && user="user root;"
cat >"$WORK/nginx/nginx.conf" <<EOF
$user
worker_processes $NGINX_WORKERS;
worker_rlimit_nofile $NOFILE;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
daemon off;
master_process on;
events {
    worker_connections $((NOFILE - 100));
}
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    include $WORK/nginx/tickerd.conf;
}
EOF
nginx -t -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" >>"$WORK/nodes-nginx.log" 2>&1 ||
    { log "nginx rejects the config (see build/bench/logs/nodes-nginx.log)"; exit 1; }
nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" >>"$WORK/nodes-nginx.log" 2>&1 &
NGINX_PID=$!
STARTED+=("$NGINX_PID")
wait_http "http://127.0.0.1:$NGINX_PORT/healthz" 20 || { log "nginx did not start"; exit 1; }
sleep 0.5
log "$NODES nodes (${NODE_PORTS[*]}, workers 1) behind nginx :$NGINX_PORT ($NGINX_WORKERS workers), $N clients"

NODES_CSV=$(IFS=,; echo "${NODE_PIDS[*]}")
PID_ARGS=()
for p in "${NODE_PIDS[@]}"; do PID_ARGS+=(--pid "$p"); done
RUN=0
lg() { # OUT-NAME ARGS...: one loadgen run through nginx, under the lock
    local out=$1
    shift
    RUN=$((RUN + 1))
    local lock=()
    [ -n "$LOCK" ] && lock=(flock "$LOCK")
    "${lock[@]}" "$LOADGEN" --target tickerd --label nodes --port "$NGINX_PORT" \
        --redis "127.0.0.1:$REDIS_PORT" --stream "$STREAM" --src "127.30.$RUN" \
        --out "$SR/$out.json" --timeout 240 "$@" || log "loadgen $out failed"
    sleep 2 # every node sees its clients go
}

# ---------------------------------------------------------------- idle
python3 tests/bench/sample.py --group nodes="$NODES_CSV" --group nginx="$NGINX_PID" \
    --group redis="$REDIS_PID" --interval 0.5 --max-s 250 --out "$SR/nodes-idle-samples.jsonl" &
SAMPLER=$!
STARTED+=("$SAMPLER")
sleep 1.2 # two samples before the clients
lg nodes-idle --scenario idle -n "$N" --hold "$HOLD" --connect-timeout 120 --procs 2 "${PID_ARGS[@]}"
stop_pid "$SAMPLER"
python3 tests/bench/sample.py --summary "$SR/nodes-idle-samples.jsonl" >"$SR/nodes-idle-kernel.json"

# ---------------------------------------------------------------- steady
lg nodes-steady-tickerd --scenario steady -n "$N" --rate 20 --duration "$DURATION" --procs 2 \
    "${PID_ARGS[@]}"
lg nodes-steady-nginx --scenario steady -n "$N" --rate 20 --duration "$DURATION" --procs 2 \
    --pid "$NGINX_PID"
lg nodes-steady-redis --scenario steady -n "$N" --rate 20 --duration "$DURATION" --procs 2 \
    --pid "$REDIS_PID"
log "nginx errors for want of descriptors:" \
    "$(grep -c "worker_connections are not enough\|Too many open files" "$WORK/nginx/error.log")"
exit 0
