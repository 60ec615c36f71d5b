#!/bin/bash
# tests/bench/run.sh - `make bench` (issue 7): tickerd against the Node.js ws
# peer and nginx+nchan, same scenarios, same run.
#
# Starts its own redis-server, then each target in turn (tickerd with
# workers=W, tickerd with workers=1, the Node peer with W processes, nginx
# with W nchan workers) on free loopback ports in a temp dir, runs every
# scenario with build/bench/loadgen, stops what it started (by PID), prints
# a table with the ratios tickerd/peer and writes build/bench/results.json.
#
#   BENCH_SCALE=small|full   small (default) ends in about 5 minutes; full
#                            uses the issues' numbers (about 15 minutes)
#   BENCH_WORKERS=2          server processes of every target
#   BENCH_TARGETS="tickerd tickerd-w1 node nchan"   (plus "base" when
#                            BENCH_BASE_BIN is set)
#   BENCH_QUEUE_BYTES=N      tickerd's [limits] max_queue_bytes; unset (the
#                            default) = the daemon's own default
#   TICKERD_BIN=PATH         the binary of the tickerd and tickerd-w1 targets
#                            (default build/tickerd)
#   BENCH_BASE_BIN=PATH      another tickerd binary (e.g. an older release,
#                            built in its own worktree), run in the same run as
#                            target "base" with workers=W; the table then
#                            has tickerd/base ratios
#   BENCH_SCENARIOS="floor idle flash steady burst storm stalled poll redis nodes"   the scenarios
#                            to run; floor is the bare-send floor (tests/bench/floor.c):
#                            the steady scenario's sends with no server, as the
#                            column "floor", the steady run's own sends (its
#                            filters: floor --filtered), and FLASH_K rounds to
#                            IDLE_N sockets; steady (tickerd, base) also runs
#                            unfiltered, every client owed every item (the
#                            floor's own load);
#                            flash (tickerd, base): the idle scenario's clients,
#                            then FLASH_K global items, each timed from its XADD
#                            to its last client (its idle figures stand for idle's);
#                            poll: RSS per 10,000 waiting long-polls,
#                            tickerd targets only, tests/bench/poll_rss.py;
#                            redis: Redis's cost of waking N blocked XREAD
#                            readers (tests/bench/redis_readers.c, N in
#                            BENCH_REDIS_READERS, default "1 50 500 2000");
#                            nodes: 4 tickerd nodes behind the shipped nginx
#                            config (tests/bench/nodes.sh); both feed the
#                            sizing model (tests/bench/sizing.py, build/bench/sizing.json);
#                            together about 70 s at small scale, 3.5 min at full
#   BENCH_BUSY_POLL=1        the steady runs' clients and the floor's readers
#                            never sleep (--busy-poll), so no sender pays for
#                            waking them (docs/performance.md, "The floor
#                            against the steady run's own sends"); off by
#                            default: they take the cores
#   BENCH_STALLED_PEERS=1    also run the stalled scenario on node and nchan
#                            (off by default: they buffer per client, and
#                            loadgen stops the burst at --rss-limit-mb)
#
# As root it raises net.core.somaxconn and net.ipv4.tcp_max_syn_backlog to 65535 for the run (docs/deployment.md
# recommends both for reconnect storms; every target gets the same backlog) and
# puts the old value back at the end.
#
# Loopback only; every run of loadgen is bounded in count and time.
set -u
cd "$(dirname "$0")/../.."
ROOT=$PWD
SCALE=${BENCH_SCALE:-small}
W=${BENCH_WORKERS:-2}
TARGETS=${BENCH_TARGETS:-"tickerd tickerd-w1 node nchan"}
SCENARIOS=" ${BENCH_SCENARIOS:-floor idle flash steady burst storm stalled poll redis nodes} "
want() { [[ $SCENARIOS == *" $1 "* ]]; }
QUEUE_BYTES=${BENCH_QUEUE_BYTES:-} # empty: the daemon's default
BUSY=()
[ "${BENCH_BUSY_POLL:-0}" = 1 ] && BUSY=(--busy-poll)
TICKERD_BIN=${TICKERD_BIN:-$ROOT/build/tickerd}
BASE_BIN=${BENCH_BASE_BIN:-}
if [ -n "$BASE_BIN" ] && [ -z "${BENCH_TARGETS:-}" ]; then
    TARGETS="tickerd base tickerd-w1 node nchan"
fi
if [[ " $TARGETS " == *" base "* ]] && [ ! -x "$BASE_BIN" ]; then
    echo "run.sh: target base needs BENCH_BASE_BIN (an executable tickerd)" >&2
    exit 2
fi
OUT=$ROOT/build/bench
RAW=$OUT/raw
mkdir -p "$RAW"
rm -f "$RAW"/*.json
rm -rf "$RAW/sizing"
WORK=$(mktemp -d /tmp/tickerd-bench.XXXXXX)
STARTED=() # PIDs of the processes this script started

. tests/bench/lib.sh # stop_pid, free_port, wait_http
log() { printf '%s bench: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }


cleanup() {
    local pid
    for pid in "${STARTED[@]}"; do stop_pid "$pid"; done
    mkdir -p "$OUT/logs"
    cp "$WORK"/*.log "$WORK"/nginx/error.log "$OUT/logs/" 2>/dev/null
    rm -rf "$WORK"
    [ -n "${RESTORE_SOMAXCONN:-}" ] && echo "$RESTORE_SOMAXCONN" > /proc/sys/net/core/somaxconn
    [ -n "${RESTORE_SYN_BACKLOG:-}" ] && echo "$RESTORE_SYN_BACKLOG" > /proc/sys/net/ipv4/tcp_max_syn_backlog
    return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM



# ---------------------------------------------------------------- sizes
case $SCALE in
full)
    IDLE_N=100000 HOLD=5
    STEADY_N=10000 STEADY_T=20
    BURST_N=1000 BURST_M=5000
    STORM_N=50000 STORM_K=24
    STALL_N=1000 STALL_CTL=100 STALL_M=5000
    ;;
*)
    SCALE=small
    IDLE_N=5000 HOLD=2
    STEADY_N=2000 STEADY_T=5
    BURST_N=200 BURST_M=2000
    STORM_N=2000 STORM_K=24
    STALL_N=1000 STALL_CTL=100 STALL_M=5000
    ;;
esac
# flash: FLASH_K global items FLASH_GAP s apart to the idle scenario's
# clients; FLASH_BYTES is the size of their WebSocket frame (loadgen reports
# it as flash_frame_bytes), which the floor's flash round sends
FLASH_K=5 FLASH_GAP=2 FLASH_BYTES=271
# stalled: items of about 1 KB (900 bytes of text), 10 clients that read
# beside the stalled ones, 4 s of hold after the burst (the RSS peak), then
# until the server has closed every stalled client (slow_timeout_s = 15) or
# 25 s after the burst, then 5 s in which the stalled clients read again
STALL_TEXT=900 STALL_READERS=10 STALL_HOLD=4 STALL_OBSERVE=25 STALL_DRAIN=5
NOFILE=$(ulimit -Hn)
[ "$NOFILE" = unlimited ] && NOFILE=1048576
ulimit -n "$NOFILE"
OLD_SOMAXCONN=$(cat /proc/sys/net/core/somaxconn 2>/dev/null || echo "")
if [ "$(id -u)" = 0 ] && [ -n "$OLD_SOMAXCONN" ] && [ "$OLD_SOMAXCONN" -lt 65535 ]; then
    echo 65535 > /proc/sys/net/core/somaxconn 2>/dev/null && RESTORE_SOMAXCONN=$OLD_SOMAXCONN
fi
# tickerd's listener defers accept until a request is in (TCP_DEFER_ACCEPT):
# in a storm the connections wait in the SYN queue, which this bounds
# (docs/deployment.md recommends 65535 too)
OLD_SYN_BACKLOG=$(cat /proc/sys/net/ipv4/tcp_max_syn_backlog 2>/dev/null || echo "")
if [ "$(id -u)" = 0 ] && [ -n "$OLD_SYN_BACKLOG" ] && [ "$OLD_SYN_BACKLOG" -lt 65535 ]; then
    echo 65535 > /proc/sys/net/ipv4/tcp_max_syn_backlog 2>/dev/null && RESTORE_SYN_BACKLOG=$OLD_SYN_BACKLOG
fi
PER_PROC=$((NOFILE - 1000)) # connections one server process can hold
# the idle and flash scenarios need enough server processes for IDLE_N
# descriptors, the storm for STORM_N
procs_for() { local p=$((($1 + PER_PROC - 1) / PER_PROC)); echo $((p < W ? W : p)); }
WI=$(procs_for "$IDLE_N")
WS=$(procs_for "$STORM_N")
log "scale $SCALE: idle $IDLE_N, steady $STEADY_N x ${STEADY_T}s at 20 and 5 items/s," \
    "burst $BURST_M items to $BURST_N, storm $STORM_N, stalled $STALL_N and $STALL_CTL;" \
    "flash $FLASH_K items to the idle clients; workers $W (idle, flash: $WI; storm: $WS);" \
    "nofile $NOFILE; max_queue_bytes ${QUEUE_BYTES:-default}"

# ---------------------------------------------------------------- build, deps
make --no-print-directory all >&2 || exit 1
cc -O2 -g -Wall -Wextra -Wno-unused-parameter -std=gnu11 -D_GNU_SOURCE \
    -o "$OUT/loadgen" tests/bench/loadgen.c -lhiredis || exit 1
LOADGEN=$OUT/loadgen
cc -O2 -g -Wall -Wextra -Wno-unused-parameter -std=gnu11 -D_GNU_SOURCE \
    -o "$OUT/floor" tests/bench/floor.c || exit 1
cc -O2 -g -Wall -Wextra -Wno-unused-parameter -std=gnu11 -D_GNU_SOURCE \
    -o "$OUT/redis_readers" tests/bench/redis_readers.c -lhiredis || exit 1

have_nchan() { [ -e /usr/lib/nginx/modules/ngx_nchan_module.so ] && command -v nginx >/dev/null; }
if [[ " $TARGETS " == *" nchan "* ]] && ! have_nchan; then
    if [ "$(id -u)" = 0 ]; then
        log "installing nginx-light and libnginx-mod-nchan"
        (apt-get install -y nginx-light libnginx-mod-nchan ||
            { apt-get update && apt-get install -y nginx-light libnginx-mod-nchan; }) >&2
    fi
    have_nchan || { log "nginx with nchan is missing: skipping the nchan peer"; TARGETS=${TARGETS/nchan/}; }
fi
if [[ " $TARGETS " == *" node "* ]]; then
    if [ ! -d tests/bench/peer-node/node_modules/ws ]; then
        (cd tests/bench/peer-node && npm ci --no-audit --no-fund >&2) ||
            { log "npm install failed: skipping the Node peer"; TARGETS=${TARGETS/node/}; }
    fi
fi

# ---------------------------------------------------------------- redis
REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$WORK" --logfile "$WORK/redis.log" --daemonize no &
REDIS_PID=$!
STARTED+=("$REDIS_PID")
for i in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p "$REDIS_PORT" ping >/dev/null || { log "redis-server did not start"; exit 1; }

# ---------------------------------------------------------------- targets
TPID="" TPORT="" TSTREAM="" TKIND=""

start_target() { # NAME WORKERS
    local name=$1 workers=$2
    TPORT=$(free_port)
    TSTREAM="bench:$name:$RANDOM$RANDOM"
    case $name in
    tickerd* | base)
        TKIND=tickerd
        local bin=$TICKERD_BIN
        [ "$name" = base ] && bin=$BASE_BIN
        cat >"$WORK/$name.conf" <<EOF
[server]
listen = 127.0.0.1:$TPORT
workers = $workers
static_dir = $ROOT/clients/web
[redis]
url = redis://127.0.0.1:$REDIS_PORT/0
[stream]
key = $TSTREAM
[limits]
max_connections = 200000
EOF
        [ -n "$QUEUE_BYTES" ] && echo "max_queue_bytes = $QUEUE_BYTES" >>"$WORK/$name.conf"
        if ! "$bin" -c "$WORK/$name.conf" --check-config >&2; then
            log "$name: $bin does not accept its configuration"
            return 1
        fi
        "$bin" -c "$WORK/$name.conf" >>"$WORK/$name.log" 2>&1 &
        TPID=$!
        HEALTH=http://127.0.0.1:$TPORT/healthz
        ;;
    node)
        TKIND=node
        (cd tests/bench/peer-node && PORT=$TPORT REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0 \
            STREAM=$TSTREAM WORKERS=$workers exec node server.js) >>"$WORK/node.log" 2>&1 &
        TPID=$!
        HEALTH=http://127.0.0.1:$TPORT/healthz
        ;;
    nchan)
        TKIND=nchan
        mkdir -p "$WORK/nginx"
        local user=""
        [ "$(id -u)" = 0 ] && user="user root;"
        sed -e "s#@PREFIX@#$WORK/nginx#g" -e "s#@WORKERS@#$workers#" -e "s#@NOFILE@#$NOFILE#" \
            -e "s#@CONNS@#$PER_PROC#" -e "s#@PORT@#$TPORT#" -e "s#@USER@#$user#" \
            tests/bench/nchan.conf >"$WORK/nginx/nchan.conf"
        nginx -p "$WORK/nginx" -c "$WORK/nginx/nchan.conf" >>"$WORK/nginx.log" 2>&1 &
        TPID=$!
        HEALTH=http://127.0.0.1:$TPORT/healthz
        ;;
    esac
    STARTED+=("$TPID")
    if ! wait_http "$HEALTH" 20; then
        log "$name did not start (see $OUT/logs)"
        return 1
    fi
    sleep 0.5 # every worker up
    log "$name: pid $TPID, port $TPORT, $workers process(es)"
}

stop_target() {
    stop_pid "$TPID"
    TPID=""
}

RUN=0
loadgen() { # NAME SCENARIO OUTFILE ARGS...
    local name=$1 scen=$2 out=$3
    shift 3
    RUN=$((RUN + 1))
    local pub=()
    [ "$TKIND" != nchan ] && pub=(--redis "127.0.0.1:$REDIS_PORT" --stream "$TSTREAM")
    "$LOADGEN" --target "$TKIND" --label "$name" --scenario "$scen" --port "$TPORT" \
        "${pub[@]}" --pid "$TPID" --src "127.$((20 + RUN / 200)).$((RUN % 200 + 1))" \
        --out "$RAW/$out.json" --timeout 300 "$@" || log "loadgen $name $scen failed"
    if [ -s "$RAW/$out.json" ]; then
        python3 tests/bench/report.py --one "$RAW/$out.json" >&2
    fi
    sleep 1 # the server sees the clients go
}

storm() { # NAME: STORM_N clients reconnect at once with since
    local n=$STORM_N
    [ "$1" = tickerd-w1 ] && [ "$n" -gt "$PER_PROC" ] && n=$PER_PROC
    loadgen "$1" storm "$1-storm" -n "$n" --items "$STORM_K" --procs 2 --connect-timeout 30
}

# ---------------------------------------------------------------- the floor
# The steady scenario's sends (STEADY_N sockets, 20 rounds a second for
# STEADY_T s, 180 bytes) with nothing else, then one round to IDLE_N
# sockets (the flash figure's floor: FLASH_K rounds of the flash frame's
# size, FLASH_GAP s apart); as many sender processes as the flash target
# has workers (WI), each with a reader process.
if want floor; then
    "$OUT/floor" -n "$STEADY_N" --procs "$W" --rate 20 --duration "$STEADY_T" --bytes 180 \
        --src 127.9.1 "${BUSY[@]}" --out "$RAW/floor-steady20.json" || log "floor (steady) failed"
    # the steady run's own sends: loadgen's filters (filters.h) owe a client
    # 3/8 of the items, so a socket is written every 50 to 400 ms, not every
    # 50 ms, which costs the sender more a send (docs/performance.md, "The
    # floor against the steady run's own sends")
    "$OUT/floor" -n "$STEADY_N" --procs "$W" --rate 20 --duration "$STEADY_T" --bytes 180 \
        --filtered --src 127.9.3 "${BUSY[@]}" --out "$RAW/floor-steady20m.json" ||
        log "floor (filtered) failed"
    "$OUT/floor" -n "$IDLE_N" --procs "$WI" --rate 1 --duration 1 --bytes "$FLASH_BYTES" \
        --flash-rounds "$FLASH_K" --flash-gap "$FLASH_GAP" \
        --src 127.9.2 --out "$RAW/floor-flash.json" || log "floor (flash) failed"
    for f in steady20 steady20m flash; do
        [ -s "$RAW/floor-$f.json" ] && python3 tests/bench/report.py --one "$RAW/floor-$f.json" >&2
    done
fi

# ------------------------------------------------- the hub's own fan-out
# tk_hub_publish alone (tests/bench/fanout.c, built by make bench): STEADY_N
# clients with the steady run's filters, scattered in memory, the caches
# walked cold between two items as the kernel's sends walk them; the table
# sets its ns per delivery against tickerd's steady CPU per delivery.
if want steady && [[ " $TARGETS " == *" tickerd "* ]]; then
    { make -s --no-print-directory build/bench/fanout &&
        "$OUT/fanout" "$STEADY_N" 400 > "$RAW/tickerd-fanout.json"; } || log "fanout failed"
    [ -s "$RAW/tickerd-fanout.json" ] && python3 tests/bench/report.py --one "$RAW/tickerd-fanout.json" >&2
fi

for name in $TARGETS; do
    w=$W
    [ "$name" = tickerd-w1 ] && w=1
    wi=$WI
    idle_n=$IDLE_N
    if [ "$name" = tickerd-w1 ]; then
        wi=1
        [ "$idle_n" -gt "$PER_PROC" ] && idle_n=$PER_PROC
    fi
    # flash (tickerd and base): the idle scenario's clients, then the items;
    # its JSON has the idle figures too (report.py reads them as idle's)
    scen=""
    want idle && scen=idle
    want flash && [[ $name == tickerd || $name == base ]] && scen=flash
    if [ -n "$scen" ]; then
        start_target "$name" "$wi" || { stop_target; continue; }
        loadgen "$name" "$scen" "$name-$scen" -n "$idle_n" --hold "$HOLD" --connect-timeout 120 \
            --items "$FLASH_K" --gap "$FLASH_GAP"
        [ "$wi" != "$w" ] && stop_target
    fi
    # the storm gets a server of its own when STORM_N needs more processes
    ws=$WS
    [ "$name" = tickerd-w1 ] && ws=1
    if want steady || want burst || { want storm && [ "$ws" = "$w" ]; }; then
        [ -z "$TPID" ] && { start_target "$name" "$w" || { stop_target; continue; }; }
        if want steady; then
            loadgen "$name" steady "$name-steady20" -n "$STEADY_N" --rate 20 --duration "$STEADY_T" --procs 2 \
                "${BUSY[@]}"
            loadgen "$name" steady "$name-steady5" -n "$STEADY_N" --rate 5 --duration "$STEADY_T" --procs 2 \
                "${BUSY[@]}"
            # the floor's own load: every client owed every item
            [[ $name == tickerd || $name == base ]] &&
                loadgen "$name" steady "$name-steady20u" -n "$STEADY_N" --rate 20 \
                    --duration "$STEADY_T" --procs 2 --unfiltered "${BUSY[@]}"
        fi
        want burst && loadgen "$name" burst "$name-burst" -n "$BURST_N" --items "$BURST_M" --procs 2 --drain 60
        want storm && [ "$ws" = "$w" ] && storm "$name"
    fi
    stop_target
    if want storm && [ "$ws" != "$w" ]; then
        start_target "$name" "$ws" && storm "$name"
        stop_target
    fi
    if want poll && [[ $name == tickerd* || $name == base ]]; then
        if start_target "$name" "$w"; then
            redis-cli -p "$REDIS_PORT" XADD "$TSTREAM" '*' text "poll bench" >/dev/null
            sleep 0.5
            python3 tests/bench/poll_rss.py --port "$TPORT" --pid "$TPID" -n 10000 \
                --out "$OUT/$name-poll.json" || log "poll_rss $name failed"
        fi
        stop_target
    fi
    if ! want stalled; then
        :
    elif [[ $name == tickerd* || $name == base ]] || [ "${BENCH_STALLED_PEERS:-0}" = 1 ]; then
        # each on a fresh server, so that neither sees the other's heap
        for n in 0 "$STALL_CTL" "$STALL_N"; do # 0: the readers alone, the baseline
            start_target "$name" "$w" || { stop_target; continue; }
            loadgen "$name" stalled "$name-stalled$n" -n "$n" --readers "$STALL_READERS" \
                --items "$STALL_M" --text-bytes "$STALL_TEXT" --rcvbuf 4096 --hold "$STALL_HOLD" \
                --observe "$STALL_OBSERVE" --drain "$STALL_DRAIN" --rss-limit-mb 3072 --timeout 120
            stop_target
        done
    fi
done

# ---------------------------------------------------------------- sizing
# issue 15's model: Redis's cost per woken reader, then 4 nodes behind nginx
if want redis; then
    mkdir -p "$RAW/sizing"
    rr_items=100
    [ "$SCALE" = full ] && rr_items=200
    for n in ${BENCH_REDIS_READERS:-1 50 500 2000}; do
        "$OUT/redis_readers" --port "$REDIS_PORT" --redis-pid "$REDIS_PID" --readers "$n" \
            --items "$rr_items" --rate 20 --burst 200 --key "bench:readers:$n:$RANDOM" \
            --out "$RAW/sizing/redis-N$n.json" || log "redis_readers $n failed"
        [ -s "$RAW/sizing/redis-N$n.json" ] && cat "$RAW/sizing/redis-N$n.json" >&2
    done
fi
if want nodes; then
    if command -v nginx >/dev/null; then
        REDIS_PORT=$REDIS_PORT REDIS_PID=$REDIS_PID LOADGEN=$LOADGEN \
            TICKERD_BIN=$TICKERD_BIN RAW=$RAW SCALE=$SCALE tests/bench/nodes.sh ||
            log "nodes failed"
    else
        log "nginx is missing: skipping the nodes scenario"
    fi
fi

python3 tests/bench/report.py --scale "$SCALE" --workers "$W" --out "$OUT/results.json" \
    --bin "$TICKERD_BIN" ${BASE_BIN:+--base-bin "$BASE_BIN"} --poll "$OUT"/*-poll.json -- "$RAW"/*.json
if want redis || want nodes; then
    python3 tests/bench/sizing.py --raw "$RAW" --out "$OUT/sizing.json"
fi
